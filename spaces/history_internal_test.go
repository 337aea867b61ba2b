package spaces

import (
	"reflect"
	"testing"
)

// TestParseHistoryInChunks checks that parsing a file in two reads, the
// second starting where the first consumed, gives the entries of one read,
// wherever the first read stops, multi-line commands included.
func TestParseHistoryInChunks(t *testing.T) {
	data := "pre\n#1700000000\necho one\n#1700000001\nfor x in a; do\necho $x\ndone\n\n#1700000002\n# note\n#1700000003\nls\n"
	whole, n := ParseHistory([]byte(data))
	if n != len(data) || len(whole) != 5 {
		t.Fatalf("whole file: consumed %d of %d, %d entries %q", n, len(data), len(whole), whole)
	}
	for cut := 0; cut <= len(data); cut++ {
		got, first := parseHistory([]byte(data[:cut]), false)
		rest, second := ParseHistory([]byte(data[first:]))
		got = append(got, rest...)
		if first+second != len(data) || !reflect.DeepEqual(got, whole) {
			t.Fatalf("first read of %d bytes: consumed %d+%d, entries %q; want %q", cut, first, second, got, whole)
		}
	}
}

func TestTruncateUTF8(t *testing.T) {
	tests := []struct {
		name    string
		s       string
		n       int
		want    string
		wantCut bool
	}{
		{name: "short", s: "abc", n: 4, want: "abc"},
		{name: "exact", s: "abcd", n: 4, want: "abcd"},
		{name: "ascii cut", s: "abcdef", n: 4, want: "abcd", wantCut: true},
		{name: "not inside a character", s: "ab✓cd", n: 4, want: "ab", wantCut: true},
		{name: "after a character", s: "ab✓cd", n: 5, want: "ab✓", wantCut: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, cut := truncateUTF8(tt.s, tt.n)
			if got != tt.want || cut != tt.wantCut {
				t.Errorf("truncateUTF8(%q, %d) = %q, %v; want %q, %v", tt.s, tt.n, got, cut, tt.want, tt.wantCut)
			}
		})
	}
}
