// Fly's named machine sizes (flyctl's --vm-size presets) and regions. A size maps to the guest
// block of a machine config.
export const MACHINE_SIZES = {
  'shared-cpu-1x': { cpuKind: 'shared', cpus: 1, memoryMb: 256 },
  'shared-cpu-2x': { cpuKind: 'shared', cpus: 2, memoryMb: 512 },
  'shared-cpu-4x': { cpuKind: 'shared', cpus: 4, memoryMb: 1024 },
  'shared-cpu-8x': { cpuKind: 'shared', cpus: 8, memoryMb: 2048 },
  'performance-1x': { cpuKind: 'performance', cpus: 1, memoryMb: 2048 },
  'performance-2x': { cpuKind: 'performance', cpus: 2, memoryMb: 4096 },
  'performance-4x': { cpuKind: 'performance', cpus: 4, memoryMb: 8192 },
  'performance-8x': { cpuKind: 'performance', cpus: 8, memoryMb: 16384 },
  'performance-16x': { cpuKind: 'performance', cpus: 16, memoryMb: 32768 },
} as const;

export type MachineSize = keyof typeof MACHINE_SIZES;
export const MACHINE_SIZE_NAMES = Object.keys(MACHINE_SIZES) as [MachineSize, ...MachineSize[]];
export const DEFAULT_MACHINE_SIZE: MachineSize = 'shared-cpu-1x';

export const REGIONS = {
  ams: 'Amsterdam, Netherlands',
  arn: 'Stockholm, Sweden',
  atl: 'Atlanta, Georgia (US)',
  bog: 'Bogotá, Colombia',
  bom: 'Mumbai, India',
  bos: 'Boston, Massachusetts (US)',
  cdg: 'Paris, France',
  den: 'Denver, Colorado (US)',
  dfw: 'Dallas, Texas (US)',
  ewr: 'Secaucus, NJ (US)',
  eze: 'Ezeiza, Argentina',
  fra: 'Frankfurt, Germany',
  gdl: 'Guadalajara, Mexico',
  gig: 'Rio de Janeiro, Brazil',
  gru: 'Sao Paulo, Brazil',
  hkg: 'Hong Kong',
  iad: 'Ashburn, Virginia (US)',
  jnb: 'Johannesburg, South Africa',
  lax: 'Los Angeles, California (US)',
  lhr: 'London, United Kingdom',
  mad: 'Madrid, Spain',
  mia: 'Miami, Florida (US)',
  nrt: 'Tokyo, Japan',
  ord: 'Chicago, Illinois (US)',
  otp: 'Bucharest, Romania',
  phx: 'Phoenix, Arizona (US)',
  qro: 'Querétaro, Mexico',
  scl: 'Santiago, Chile',
  sea: 'Seattle, Washington (US)',
  sin: 'Singapore',
  sjc: 'San Jose, California (US)',
  syd: 'Sydney, Australia',
  waw: 'Warsaw, Poland',
  yul: 'Montreal, Canada',
  yyz: 'Toronto, Canada',
} as const;

export type Region = keyof typeof REGIONS;
export const REGION_CODES = Object.keys(REGIONS) as [Region, ...Region[]];
export const DEFAULT_REGION: Region = 'iad';
