// Command hello-go is a Vango-style app for Rhone, standard library only. It listens on $PORT
// (default 8080), answers GET /health, shows its release on GET /, reports it on GET /release,
// and keeps a WebSocket at /_vango/ws (RFC 6455, written by hand on net/http's Hijacker). On
// SIGTERM it stops accepting, fails /health, tells every client to reconnect, closes them with
// 1012 (service restart), waits up to 5 s for them to go, and exits 0.
package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"html"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

const (
	wsGUID     = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
	maxMessage = 16 << 20
	drainTime  = 5 * time.Second

	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xa
)

var (
	release  = readRelease()
	draining atomic.Bool

	connsMu sync.Mutex
	conns   = map[*wsConn]struct{}{}
)

// readRelease returns $RHONE_RELEASE, else the contents of a RELEASE file next to the
// executable (or in the working directory), else "dev".
func readRelease() string {
	if r := os.Getenv("RHONE_RELEASE"); r != "" {
		return r
	}
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	dirs = append(dirs, ".")
	for _, dir := range dirs {
		if b, err := os.ReadFile(filepath.Join(dir, "RELEASE")); err == nil {
			if r := strings.TrimSpace(string(b)); r != "" {
				return r
			}
		}
	}
	return "dev"
}

const pageTemplate = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hello-go {{RELEASE}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px system-ui,sans-serif;max-width:40em;margin:2em auto;padding:0 1em}
code{background:#eee;padding:0 .3em}#log{font:13px ui-monospace,monospace;color:#333}</style></head>
<body><h1>hello-go</h1>
<p>Release <code id="release">{{RELEASE}}</code> on <code>{{HOSTNAME}}</code>, pid <code>{{PID}}</code>.</p>
<p>WebSocket: <span id="state">connecting…</span></p><ul id="log"></ul>
<script>
var log = document.getElementById('log'), state = document.getElementById('state');
function line(text) {
  var li = document.createElement('li');
  li.textContent = new Date().toLocaleTimeString() + '  ' + text;
  log.insertBefore(li, log.firstChild);
  while (log.children.length > 15) log.removeChild(log.lastChild);
}
function connect() {
  var ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/_vango/ws');
  var timer;
  ws.onopen = function () {
    state.textContent = 'open';
    ws.send('ping');
    timer = setInterval(function () { ws.send('ping'); }, 2000);
  };
  ws.onmessage = function (e) { line(e.data); };
  ws.onclose = function (e) {
    clearInterval(timer);
    state.textContent = 'closed (' + e.code + '), reconnecting…';
    setTimeout(connect, 1000);
  };
}
connect();
</script></body></html>
`

func send(w http.ResponseWriter, status int, contentType, body string) {
	if draining.Load() {
		w.Header().Set("Connection", "close")
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	hostname, _ := os.Hostname()
	page := strings.NewReplacer(
		"{{RELEASE}}", html.EscapeString(release),
		"{{HOSTNAME}}", html.EscapeString(hostname),
		"{{PID}}", strconv.Itoa(os.Getpid()),
	).Replace(pageTemplate)

	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			send(w, http.StatusServiceUnavailable, "text/plain; charset=utf-8", "draining")
			return
		}
		send(w, http.StatusOK, "text/plain; charset=utf-8", "ok")
	})
	mux.HandleFunc("/release", func(w http.ResponseWriter, r *http.Request) {
		body, _ := json.Marshal(struct {
			Release string `json:"release"`
			Pid     int    `json:"pid"`
		}{release, os.Getpid()})
		send(w, http.StatusOK, "application/json", string(body))
	})
	mux.HandleFunc("/_vango/ws", handleWebSocket)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			send(w, http.StatusNotFound, "text/plain; charset=utf-8", "not found\n")
			return
		}
		send(w, http.StatusOK, "text/html; charset=utf-8", page)
	})

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("hello-go %s listening on %s (pid %d)", release, ln.Addr(), os.Getpid())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	if sig := <-sigs; sig == syscall.SIGINT {
		for _, c := range openConns() {
			c.close(1001, "going away")
		}
		os.Exit(0)
	}
	go func() {
		<-sigs // a second signal: stop waiting
		os.Exit(0)
	}()

	// SIGTERM: fail /health, stop accepting, tell the clients to reconnect, wait for them.
	draining.Store(true)
	log.Printf("hello-go %s: SIGTERM, draining %d WebSocket(s)", release, len(openConns()))
	ctx, cancel := context.WithTimeout(context.Background(), drainTime)
	defer cancel()
	shutdown := make(chan struct{})
	go func() {
		srv.Shutdown(ctx) // closes the listener, waits for in-flight HTTP requests
		close(shutdown)
	}()
	for _, c := range openConns() {
		c.writeFrame(opText, []byte(`{"type":"reconnect"}`))
		c.close(1012, "service restart")
	}
	for len(openConns()) > 0 && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	<-shutdown
	if n := len(openConns()); n > 0 {
		log.Printf("hello-go %s: drain deadline, exiting with %d WebSocket(s) still open", release, n)
	}
	os.Exit(0)
}

func openConns() []*wsConn {
	connsMu.Lock()
	defer connsMu.Unlock()
	list := make([]*wsConn, 0, len(conns))
	for c := range conns {
		list = append(list, c)
	}
	return list
}

// headerHas reports whether the comma-separated header name contains token.
func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func handleWebSocket(w http.ResponseWriter, r *http.Request) {
	if draining.Load() {
		send(w, http.StatusServiceUnavailable, "text/plain; charset=utf-8", "draining\n")
		return
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	rawKey, keyErr := base64.StdEncoding.DecodeString(key)
	if r.Method != http.MethodGet || !headerHas(r.Header, "Connection", "upgrade") ||
		!headerHas(r.Header, "Upgrade", "websocket") || r.Header.Get("Sec-WebSocket-Version") != "13" ||
		keyErr != nil || len(rawKey) != 16 {
		w.Header().Set("Sec-WebSocket-Version", "13")
		send(w, http.StatusBadRequest, "text/plain; charset=utf-8", "expected a WebSocket upgrade\n")
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		send(w, http.StatusInternalServerError, "text/plain; charset=utf-8", "cannot hijack\n")
		return
	}
	netConn, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer netConn.Close()
	netConn.SetDeadline(time.Time{}) // clear the server's header deadlines
	sum := sha1.Sum([]byte(key + wsGUID))
	handshake := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n"
	if _, err := io.WriteString(netConn, handshake); err != nil {
		return
	}

	c := &wsConn{conn: netConn, r: brw.Reader}
	connsMu.Lock()
	conns[c] = struct{}{}
	connsMu.Unlock()
	defer func() {
		connsMu.Lock()
		delete(conns, c)
		connsMu.Unlock()
	}()

	stop := make(chan struct{})
	defer close(stop)
	go func() { // keepalive pings; the client's pongs keep the read deadline moving
		t := time.NewTicker(25 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				c.writeFrame(opPing, nil)
			case <-stop:
				return
			}
		}
	}()

	var wsErr *wsError
	if err := c.serve(); errors.As(err, &wsErr) {
		c.close(wsErr.code, wsErr.reason)
	}
}

type wsError struct {
	code   uint16
	reason string
}

func (e *wsError) Error() string { return e.reason }

var (
	errProtocol = &wsError{1002, "protocol error"}
	errBadUTF8  = &wsError{1007, "invalid UTF-8"}
	errTooBig   = &wsError{1009, "message too big"}
)

type wsConn struct {
	conn      net.Conn
	r         *bufio.Reader
	mu        sync.Mutex // serialises writes and guards closeSent
	closeSent bool
}

// writeFrame sends one unmasked, final frame. Nothing but a pong may follow a close frame.
func (c *wsConn) writeFrame(opcode byte, payload []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent && opcode != opPong {
		return nil
	}
	if opcode == opClose {
		c.closeSent = true
	}
	header := make([]byte, 2, 10)
	header[0] = 0x80 | opcode
	switch n := len(payload); {
	case n < 126:
		header[1] = byte(n)
	case n < 65536:
		header[1] = 126
		header = binary.BigEndian.AppendUint16(header, uint16(n))
	default:
		header[1] = 127
		header = binary.BigEndian.AppendUint64(header, uint64(n))
	}
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	bufs := net.Buffers{header, payload}
	_, err := bufs.WriteTo(c.conn)
	return err
}

func (c *wsConn) close(code uint16, reason string) error {
	payload := binary.BigEndian.AppendUint16(nil, code)
	return c.writeFrame(opClose, append(payload, reason...))
}

// readFrame reads one frame and unmasks its payload.
func (c *wsConn) readFrame() (fin bool, opcode byte, payload []byte, err error) {
	c.conn.SetReadDeadline(time.Now().Add(75 * time.Second))
	var head [2]byte
	if _, err = io.ReadFull(c.r, head[:]); err != nil {
		return
	}
	fin, opcode = head[0]&0x80 != 0, head[0]&0x0f
	if head[0]&0x70 != 0 || head[1]&0x80 == 0 { // reserved bits, or an unmasked client frame
		err = errProtocol
		return
	}
	n := uint64(head[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err = io.ReadFull(c.r, ext[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err = io.ReadFull(c.r, ext[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if opcode >= opClose && (!fin || n > 125) {
		err = errProtocol
		return
	}
	if n > maxMessage {
		err = errTooBig
		return
	}
	var mask [4]byte
	if _, err = io.ReadFull(c.r, mask[:]); err != nil {
		return
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(c.r, payload); err != nil {
		return
	}
	for i := range payload {
		payload[i] ^= mask[i&3]
	}
	return
}

func validCloseCode(code uint16) bool {
	return (code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006) ||
		(code >= 3000 && code <= 4999)
}

// serve reads frames until the connection closes; it returns a *wsError on a protocol error.
func (c *wsConn) serve() error {
	var msg []byte
	var msgOp byte // opcode of the message being assembled; 0 when none
	for {
		fin, op, payload, err := c.readFrame()
		if err != nil {
			return err
		}
		switch {
		case op == opPing:
			c.writeFrame(opPong, payload)
		case op == opPong:
		case op == opClose:
			if len(payload) == 1 {
				return errProtocol
			}
			if len(payload) >= 2 {
				if !validCloseCode(binary.BigEndian.Uint16(payload)) {
					return errProtocol
				}
				if !utf8.Valid(payload[2:]) {
					return errBadUTF8
				}
				payload = payload[:2]
			}
			c.writeFrame(opClose, payload) // echo the code; a no-op if we closed first
			return nil
		case op == opCont && msgOp != 0, (op == opText || op == opBinary) && msgOp == 0:
			if op != opCont {
				msgOp, msg = op, nil
			}
			if len(msg)+len(payload) > maxMessage {
				return errTooBig
			}
			msg = append(msg, payload...)
			if !fin {
				continue
			}
			if err := c.onMessage(msgOp, msg); err != nil {
				return err
			}
			msgOp, msg = 0, nil
		default:
			return errProtocol
		}
	}
}

func (c *wsConn) onMessage(op byte, msg []byte) error {
	if op == opBinary {
		c.writeFrame(opBinary, msg)
		return nil
	}
	if !utf8.Valid(msg) {
		return errBadUTF8
	}
	reply := "echo " + string(msg)
	if string(msg) == "ping" {
		reply = "pong " + release
	}
	c.writeFrame(opText, []byte(reply))
	return nil
}
