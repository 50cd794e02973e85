// Meter quantities as people read them: machine seconds as hours, bytes as GB or MB, money as dollars.
export function meterValue(meter: string, value: number | null): string {
  if (value === null) return 'unlimited';
  if (meter === 'machine_seconds') return `${(value / 3600).toLocaleString(undefined, { maximumFractionDigits: value < 36_000 ? 1 : 0 })} h`;
  if (meter === 'bandwidth')
    return value >= 1e9
      ? `${(value / 1e9).toLocaleString(undefined, { maximumFractionDigits: 2 })} GB`
      : `${(value / 1e6).toLocaleString(undefined, { maximumFractionDigits: 1 })} MB`;
  return value.toLocaleString();
}

export function dollars(cents: number | null): string {
  if (cents === null) return 'custom';
  return `$${(cents / 100).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

/** A meter's quantity in a chart's unit: hours, GB, builds. */
export function chartValue(meter: string, value: number): number {
  if (meter === 'machine_seconds') return value / 3600;
  if (meter === 'bandwidth') return value / 1e9;
  return value;
}
