package node

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"net/http/httptest"
	"testing"
	"unicode/utf8"

	"github.com/adam91holt/clawdspace/spaces"
)

// execAnswer is the reference document: what encoding/json makes of an
// exec's kept output.
type execAnswer struct {
	Stdout       string `json:"stdout"`
	Stderr       string `json:"stderr"`
	ExitCode     int    `json:"exitCode"`
	TimedOut     bool   `json:"timedOut,omitempty"`
	Truncated    bool   `json:"truncated,omitempty"`
	StdoutBase64 string `json:"stdoutBase64,omitempty"`
	StderrBase64 string `json:"stderrBase64,omitempty"`
}

func (o *execOutput) kept(s *outputStream) []byte { return bytes.Join(s.chunks, nil) }

func reference(o *execOutput, res spaces.ExecResult) []byte {
	a := execAnswer{Stdout: string(o.kept(&o.stdout)), Stderr: string(o.kept(&o.stderr)),
		ExitCode: res.ExitCode, TimedOut: res.TimedOut, Truncated: o.truncated}
	if !utf8.Valid(o.kept(&o.stdout)) {
		a.StdoutBase64 = base64.StdEncoding.EncodeToString(o.kept(&o.stdout))
	}
	if !utf8.Valid(o.kept(&o.stderr)) {
		a.StderrBase64 = base64.StdEncoding.EncodeToString(o.kept(&o.stderr))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(a); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// emptyAnswer is the size of an answer without output.
var emptyAnswer = len(`{"stdout":"","stderr":"","exitCode":0,"truncated":true}` + "\n")

// TestExecAnswerMatchesEncodingJSON writes random bytes in random pieces
// and checks that the streamed answer is exactly what encoding/json makes
// of the kept bytes, and that it stays within the cap.
func TestExecAnswerMatchesEncodingJSON(t *testing.T) {
	alphabet := []string{"a", "Z", " ", "\"", "\\", "\n", "\t", "\x00", "\x01", "\x7f", "\b", "\f", "<", "&",
		"é", "€", "🚀", "\u2028", "\u2029", "\xff", "\xe2\x82", "\xc3", "\xf0\x9f", "\x80", "\ufffd"}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 2000 {
		// Every 50th round is large, to cross chunk boundaries.
		symbols, maxLimit := 60, 300
		if round%50 == 0 {
			symbols, maxLimit = 80000, 1<<20
		}
		var src [2][]byte
		for i := range src {
			for range rng.IntN(symbols) {
				src[i] = append(src[i], alphabet[rng.IntN(len(alphabet))]...)
			}
		}
		limit := int64(rng.IntN(maxLimit))
		pool := &outputPool{max: 1 << 30}
		o, err := newExecOutput(pool, limit)
		if err != nil {
			t.Fatal(err)
		}
		// Interleave pieces of both streams, as the engine's demux does.
		for len(src[0])+len(src[1]) > 0 {
			i := rng.IntN(2)
			k := min(len(src[i]), rng.IntN(symbols/10+1))
			s := &o.stdout
			if i == 1 {
				s = &o.stderr
			}
			if n, err := s.Write(src[i][:k]); n != k || err != nil {
				t.Fatalf("Write = %d, %v; a capped write must report the whole length", n, err)
			}
			src[i] = src[i][k:]
		}
		o.finish()
		res := spaces.ExecResult{ExitCode: rng.IntN(3), TimedOut: rng.IntN(2) == 0}
		rec := httptest.NewRecorder()
		if err := writeExecAnswer(rec, o, res); err != nil {
			t.Fatal(err)
		}
		want := reference(o, res)
		if got := rec.Body.Bytes(); !bytes.Equal(got, want) {
			t.Fatalf("round %d:\n got %s\nwant %s", round, got, want)
		}
		if size := rec.Body.Len(); int64(size) > limit+int64(emptyAnswer+len(`,"timedOut":true`)+len(`,"stdoutBase64":"","stderrBase64":""`)+1) {
			t.Fatalf("round %d: answer of %d bytes for a cap of %d: %s", round, size, limit, rec.Body.Bytes())
		}
		o.release()
		if pool.used != 0 {
			t.Fatalf("round %d: %d bytes still taken from the pool", round, pool.used)
		}
	}
}

func TestExecOutputSharesLimit(t *testing.T) {
	o, err := newExecOutput(&outputPool{max: 1 << 20}, 5)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = o.stdout.Write([]byte("abc"))
	_, _ = o.stderr.Write([]byte("defg"))
	if string(o.kept(&o.stdout)) != "abc" || string(o.kept(&o.stderr)) != "de" || !o.truncated {
		t.Fatalf("out=%q err=%q truncated=%v", o.kept(&o.stdout), o.kept(&o.stderr), o.truncated)
	}
}

func TestExecOutputCutKeepsWholeRunes(t *testing.T) {
	tests := []struct {
		name          string
		in            string
		limit         int64
		want          string
		wantTruncated bool
	}{
		{"cut inside a two-byte rune", "aé", 2, "a", true},
		{"whole rune fits", "aé", 3, "aé", false},
		{"escaped newline counts two", "a\nb", 2, "a", true},
		{"NUL counts six", "\x00\x00", 6, "\x00", true},
		{"invalid byte counts its escape and its base64", "a\xff", 1 + 6 + int64(base64FieldCost) + 4, "a\xff", false},
		{"no room for the base64", "a\xff", 1 + 6 + int64(base64FieldCost) + 3, "a", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := newExecOutput(&outputPool{max: 1 << 20}, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = o.stdout.Write([]byte(tt.in))
			o.finish()
			if got := string(o.kept(&o.stdout)); got != tt.want || o.truncated != tt.wantTruncated {
				t.Fatalf("kept %q (truncated %v), want %q", got, o.truncated, tt.want)
			}
		})
	}
}

func TestExecOutputPool(t *testing.T) {
	pool := &outputPool{max: 2 * outputChunk}
	a, err := newExecOutput(pool, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newExecOutput(pool, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newExecOutput(pool, 1<<30); err == nil {
		t.Fatal("a third exec got a buffer from a spent pool")
	}
	// a's first chunk is its reservation; a second chunk is not there.
	_, _ = a.stdout.Write(bytes.Repeat([]byte("x"), outputChunk+10))
	if n := len(a.kept(&a.stdout)); n != outputChunk || !a.truncated || !a.starved {
		t.Fatalf("kept %d bytes (truncated %v, starved %v), want one chunk, cut by the pool", n, a.truncated, a.starved)
	}
	a.release()
	b.release()
	if pool.used != 0 {
		t.Fatalf("%d bytes still taken", pool.used)
	}
	if c, err := newExecOutput(pool, 1); err != nil {
		t.Fatalf("after release: %v", err)
	} else {
		c.release()
	}
}
