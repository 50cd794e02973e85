// Watches one direction of a proxied WebSocket for its first close frame (RFC 6455 §5.2), reading
// only frame headers and skipping payloads by length, so it costs next to nothing per byte.
//
// Why: which side ends the TCP connection first says nothing about who closed the WebSocket: the
// server closes TCP first in either case (RFC 6455 §7.1.1). The side that sent the first close
// frame is the one that started the close.
export class CloseFrameWatch {
  /** Payload bytes of the current frame still to pass. */
  private skip = 0;
  /** A frame header split across chunks. */
  private partial: Buffer = Buffer.alloc(0);
  /** Still inside the HTTP response head (the server's direction starts with "HTTP/1.1 101 ..."). */
  private inHead: boolean;
  private headTail = '';
  private done = false;

  constructor(options: { afterHttpHead: boolean }) {
    this.inHead = options.afterHttpHead;
  }

  /** True the first time a close frame goes by; false otherwise (and ever after). */
  feed(chunk: Buffer): boolean {
    if (this.done) return false;
    let buf = chunk;
    if (this.inHead) {
      const text = this.headTail + chunk.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) {
        this.headTail = text.slice(-3);
        return false;
      }
      this.inHead = false;
      buf = chunk.subarray(end + 4 - this.headTail.length);
    }
    if (this.partial.length > 0) {
      buf = Buffer.concat([this.partial, buf]);
      this.partial = Buffer.alloc(0);
    }
    let i = 0;
    while (i < buf.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, buf.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      const left = buf.length - i;
      if (left < 2) {
        this.partial = Buffer.from(buf.subarray(i));
        break;
      }
      const len7 = buf[i + 1] & 0x7f;
      const headerLength = (len7 === 126 ? 4 : len7 === 127 ? 10 : 2) + (buf[i + 1] & 0x80 ? 4 : 0);
      if (left < headerLength) {
        this.partial = Buffer.from(buf.subarray(i));
        break;
      }
      if ((buf[i] & 0x0f) === 0x8) {
        this.done = true;
        return true;
      }
      this.skip = len7 === 126 ? buf.readUInt16BE(i + 2) : len7 === 127 ? Number(buf.readBigUInt64BE(i + 2)) : len7;
      i += headerLength;
    }
    return false;
  }
}
