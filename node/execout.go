package node

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/adam91holt/clawdspace/spaces"
)

const (
	// outputChunk is the unit in which an exec's output is kept and
	// counted against the node-wide ceiling: kept output never has to be
	// copied to grow, so a buffer costs what it holds plus one chunk.
	outputChunk = 64 << 10
	// base64FieldCost is what `,"stdoutBase64":""` adds to an answer.
	base64FieldCost = len(`,"stdoutBase64":""`)
	// DefaultMaxExecOutput is the default of Config.MaxExecOutput.
	DefaultMaxExecOutput = 256 << 20
)

// outputPool is the node-wide ceiling on the output that JSON execs hold
// in memory until they answer.
type outputPool struct {
	mu   sync.Mutex
	used int64
	max  int64
}

func (p *outputPool) take(n int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used+n > p.max {
		return false
	}
	p.used += n
	return true
}

func (p *outputPool) give(n int64) {
	p.mu.Lock()
	p.used -= n
	p.mu.Unlock()
}

// execOutput keeps what an exec prints for a JSON answer. maxOutputBytes
// bounds the answer as sent: each byte is charged what it costs once
// JSON-escaped (a NUL is `\u0000`, an invalid byte `\ufffd`), plus its
// base64 when the stream is not valid UTF-8 and the answer must carry the
// exact bytes too. So the node's memory for one exec is bounded by the cap,
// whatever the bytes.
type execOutput struct {
	mu        sync.Mutex
	left      int64
	truncated bool
	// starved: the node-wide ceiling, not maxOutputBytes, cut the output.
	starved  bool
	pool     *outputPool
	reserved int64
	credit   int64
	stdout   outputStream
	stderr   outputStream
}

// newExecOutput reserves the first chunk of an exec's output from pool;
// the exec is refused (503) before it starts when even that is not there.
func newExecOutput(pool *outputPool, limit int64) (*execOutput, error) {
	if !pool.take(outputChunk) {
		return nil, spaces.Errorf(spaces.ErrUnavailable,
			"This node holds as much exec output as it may (%d bytes) for other commands: try again shortly, ask for a smaller maxOutputBytes, or stream the output", pool.max)
	}
	o := &execOutput{left: limit, pool: pool, reserved: outputChunk, credit: outputChunk}
	o.stdout.out, o.stderr.out = o, o
	return o, nil
}

// release gives the output's memory back to the pool.
func (o *execOutput) release() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pool.give(o.reserved)
	o.reserved, o.credit = 0, 0
	o.stdout.chunks, o.stderr.chunks = nil, nil
}

// newChunk returns an empty chunk, or nil when the pool is spent.
func (o *execOutput) newChunk() []byte {
	if o.credit > 0 {
		o.credit -= outputChunk
	} else if o.pool.take(outputChunk) {
		o.reserved += outputChunk
	} else {
		return nil
	}
	return make([]byte, 0, outputChunk)
}

// finish settles what a stream left open at the end: bytes of a UTF-8
// sequence that never completed are invalid bytes.
func (o *execOutput) finish() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range []*outputStream{&o.stdout, &o.stderr} {
		pending := s.pending
		s.pending = nil
		for _, b := range pending {
			if !s.keep([]byte{b}) {
				break
			}
		}
	}
}

// outputStream is stdout or stderr of an exec. Its chunks end on whole
// UTF-8 units, so each can be JSON-encoded on its own.
type outputStream struct {
	out     *execOutput
	chunks  [][]byte
	n       int64
	invalid bool
	// pending holds the start of a UTF-8 sequence that the next write
	// may complete.
	pending []byte
}

func (s *outputStream) Write(p []byte) (int, error) {
	o := s.out
	o.mu.Lock()
	defer o.mu.Unlock()
	n := len(p)
	for len(p) > 0 && len(s.pending) > 0 && !o.truncated {
		s.pending = append(s.pending, p[0])
		p = p[1:]
		if utf8.FullRune(s.pending) {
			_, size := utf8.DecodeRune(s.pending)
			unit, rest := s.pending[:size], s.pending[size:]
			s.pending = nil
			if !s.keep(unit) {
				break
			}
			if len(rest) > 0 {
				// An invalid first byte leaves the rest to decode again.
				p = append(append([]byte(nil), rest...), p...)
			}
		}
	}
	for len(p) > 0 && !o.truncated {
		i, room := 0, s.room()
		for i < len(p) && i < room && plainASCII(p[i]) {
			i++
		}
		if i > 0 {
			k := s.fitASCII(i)
			if k > 0 && !s.keep(p[:k]) {
				break
			}
			if k < i {
				o.truncated = true
				break
			}
			p = p[i:]
			continue
		}
		if !utf8.FullRune(p) {
			s.pending = append([]byte(nil), p...)
			break
		}
		_, size := utf8.DecodeRune(p)
		if !s.keep(p[:size]) {
			break
		}
		p = p[size:]
	}
	// Never fail a write: the command runs on and its exit code is reported.
	return n, nil
}

// room is how many bytes the last chunk still takes (a full chunk's
// worth when a new one is needed).
func (s *outputStream) room() int {
	if last := len(s.chunks) - 1; last >= 0 && len(s.chunks[last]) < outputChunk {
		return outputChunk - len(s.chunks[last])
	}
	return outputChunk
}

// fitASCII is how many of the next i plain ASCII bytes fit in the budget.
func (s *outputStream) fitASCII(i int) int {
	cost := func(k int) int64 {
		c := int64(k)
		if s.invalid {
			c += b64Len(s.n+int64(k)) - b64Len(s.n)
		}
		return c
	}
	if cost(i) <= s.out.left {
		return i
	}
	return sort.Search(i, func(k int) bool { return cost(k+1) > s.out.left })
}

// plainASCII is a byte that a JSON string holds as itself.
func plainASCII(b byte) bool { return b >= 0x20 && b < utf8.RuneSelf && b != '"' && b != '\\' }

// keep charges unit (plain ASCII, or one UTF-8 unit: a rune or an invalid
// byte) and stores it; false when it does not fit, which ends the output.
func (s *outputStream) keep(unit []byte) bool {
	o := s.out
	cost, invalid := int64(len(unit)), s.invalid
	if len(unit) == 1 || !plainASCII(unit[0]) {
		r, size := utf8.DecodeRune(unit)
		cost = jsonCost(r, size)
		// The first invalid byte: the answer then carries the exact bytes
		// in base64 too, those kept so far included.
		invalid = invalid || (r == utf8.RuneError && size == 1)
	}
	switch {
	case s.invalid:
		cost += b64Len(s.n+int64(len(unit))) - b64Len(s.n)
	case invalid:
		cost += int64(base64FieldCost) + b64Len(s.n+int64(len(unit)))
	}
	if cost > o.left {
		o.truncated = true
		return false
	}
	last := len(s.chunks) - 1
	if last < 0 || len(s.chunks[last])+len(unit) > outputChunk {
		c := o.newChunk()
		if c == nil {
			o.truncated, o.starved = true, true
			return false
		}
		s.chunks = append(s.chunks, c)
		last++
	}
	s.chunks[last] = append(s.chunks[last], unit...)
	s.n += int64(len(unit))
	s.invalid = invalid
	o.left -= cost
	return true
}

// jsonCost is the length of the rune r (an invalid byte when size is 1 and
// r is utf8.RuneError) in a JSON string written by encoding/json without
// HTML escaping.
func jsonCost(r rune, size int) int64 {
	switch {
	case r == utf8.RuneError && size == 1:
		return int64(len(`\ufffd`))
	case r == '"' || r == '\\' || r == '\n' || r == '\r' || r == '\t' || r == '\b' || r == '\f':
		return 2
	case r < 0x20 || r == '\u2028' || r == '\u2029':
		return int64(len(`\u0000`))
	}
	return int64(size)
}

func b64Len(n int64) int64 { return (n + 2) / 3 * 4 }

// writeJSONString writes the stream's bytes as the inside of a JSON
// string, chunk by chunk, so the escaped text is never held whole.
func (s *outputStream) writeJSONString(w *bufio.Writer, scratch *bytes.Buffer) error {
	enc := json.NewEncoder(scratch)
	enc.SetEscapeHTML(false)
	for _, c := range s.chunks {
		scratch.Reset()
		if err := enc.Encode(string(c)); err != nil {
			return err
		}
		// Encode wrote "…"\n: keep what is between the quotes.
		if _, err := w.Write(scratch.Bytes()[1 : scratch.Len()-2]); err != nil {
			return err
		}
	}
	return nil
}

// writeBase64 writes the stream's exact bytes in standard base64.
func (s *outputStream) writeBase64(w *bufio.Writer) error {
	enc := base64.NewEncoder(base64.StdEncoding, w)
	for _, c := range s.chunks {
		if _, err := enc.Write(c); err != nil {
			return err
		}
	}
	return enc.Close()
}

// writeExecAnswer streams the JSON answer of an exec: the same document
// as an api.ExecAnswer, without building it in memory.
func writeExecAnswer(w http.ResponseWriter, o *execOutput, res spaces.ExecResult) error {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	var scratch bytes.Buffer
	bw.WriteString(`{"stdout":"`)
	if err := o.stdout.writeJSONString(bw, &scratch); err != nil {
		return err
	}
	bw.WriteString(`","stderr":"`)
	if err := o.stderr.writeJSONString(bw, &scratch); err != nil {
		return err
	}
	bw.WriteString(`","exitCode":` + strconv.Itoa(res.ExitCode))
	if res.TimedOut {
		bw.WriteString(`,"timedOut":true`)
	}
	if o.truncated {
		bw.WriteString(`,"truncated":true`)
	}
	for _, f := range []struct {
		key string
		s   *outputStream
	}{{"stdoutBase64", &o.stdout}, {"stderrBase64", &o.stderr}} {
		if !f.s.invalid {
			continue
		}
		bw.WriteString(`,"` + f.key + `":"`)
		if err := f.s.writeBase64(bw); err != nil {
			return err
		}
		bw.WriteString(`"`)
	}
	bw.WriteString("}\n")
	return bw.Flush()
}
