package node

import (
	"bytes"
	"testing"
)

func TestTrimPartialRune(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want []byte
	}{
		{"ascii", []byte("abc"), []byte("abc")},
		{"whole rune", []byte("aé"), []byte("aé")},
		{"cut two-byte rune", []byte("a\xc3"), []byte("a")},
		{"cut three-byte rune", []byte("a\xe2\x82"), []byte("a")},
		{"whole three-byte rune", []byte("a€"), []byte("a€")},
		{"empty", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := trimPartialRune(tt.in); !bytes.Equal(got, tt.want) {
				t.Fatalf("trimPartialRune(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCappedBufferSharesLimit(t *testing.T) {
	lim := &outputLimit{left: 5}
	out, errb := &cappedBuffer{limit: lim}, &cappedBuffer{limit: lim}
	if n, err := out.Write([]byte("abc")); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	if n, err := errb.Write([]byte("defg")); n != 4 || err != nil {
		t.Fatal("a capped write must report the whole length so the copy goes on", n, err)
	}
	if string(out.buf) != "abc" || string(errb.buf) != "de" || !lim.truncated {
		t.Fatalf("out=%q err=%q truncated=%v", out.buf, errb.buf, lim.truncated)
	}
}
