package spaces_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

func epoch(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

func TestParseHistory(t *testing.T) {
	type entry = spaces.HistoryEntry
	tests := []struct {
		name         string
		data         string
		want         []entry
		wantConsumed int // -1: len(data)
	}{
		{
			name: "empty",
			data: "",
		},
		{
			name:         "timestamps are not commands",
			data:         "#1700000000\necho one\n#1700000001\necho two\n",
			want:         []entry{{"echo one", epoch(1700000000)}, {"echo two", epoch(1700000001)}},
			wantConsumed: -1,
		},
		{
			name:         "multi-line command runs to the next timestamp",
			data:         "#1700000000\nfor i in 1 2; do\n  echo $i\ndone\n#1700000005\nls\n",
			want:         []entry{{"for i in 1 2; do\n  echo $i\ndone", epoch(1700000000)}, {"ls", epoch(1700000005)}},
			wantConsumed: -1,
		},
		{
			name:         "missing trailing newline leaves the partial line",
			data:         "#1700000000\necho one\n#1700000001\necho tw",
			want:         []entry{{"echo one", epoch(1700000000)}},
			wantConsumed: len("#1700000000\necho one\n"),
		},
		{
			name:         "partial line of a multi-line command holds the whole entry back",
			data:         "#1700000000\necho one\n#1700000001\ncat <<EOF\nhal",
			want:         []entry{{"echo one", epoch(1700000000)}},
			wantConsumed: len("#1700000000\necho one\n"),
		},
		{
			name:         "final timestamp without its command is held back",
			data:         "#1700000000\necho one\n#1700000001\n",
			want:         []entry{{"echo one", epoch(1700000000)}},
			wantConsumed: len("#1700000000\necho one\n"),
		},
		{
			name:         "partial timestamp line",
			data:         "#17000",
			wantConsumed: 0,
		},
		{
			name:         "empty lines around and inside commands",
			data:         "\n\n#1700000000\n\necho a\n\necho b\n\n#1700000001\n\n#1700000002\nls\n",
			want:         []entry{{"echo a\n\necho b", epoch(1700000000)}, {"ls", epoch(1700000002)}},
			wantConsumed: -1,
		},
		{
			name:         "file without timestamps: one command per line",
			data:         "ls -la\ncd /tmp\n\n  \npwd\n",
			want:         []entry{{"ls -la", time.Time{}}, {"cd /tmp", time.Time{}}, {"pwd", time.Time{}}},
			wantConsumed: -1,
		},
		{
			name: "lines before the first timestamp have no time",
			data: "old one\nold two\n#1700000000\nnew\n",
			want: []entry{{"old one", time.Time{}}, {"old two", time.Time{}}, {"new", epoch(1700000000)}},

			wantConsumed: -1,
		},
		{
			name: "comments and other # lines are commands",
			data: "#1700000000\n# a comment\n#\n#12ab\n# 1700000001\n#1700000002\n#!/bin/sh\n",
			want: []entry{
				{"# a comment\n#\n#12ab\n# 1700000001", epoch(1700000000)},
				{"#!/bin/sh", epoch(1700000002)},
			},
			wantConsumed: -1,
		},
		{
			name:         "consecutive timestamps: the empty entry is dropped",
			data:         "#1700000000\n#1700000001\necho x\n",
			want:         []entry{{"echo x", epoch(1700000001)}},
			wantConsumed: -1,
		},
		{
			name:         "out of range timestamp has no time",
			data:         "#99999999999999999999999\necho big\n#253402300800\necho late\n#0\necho zero\n",
			want:         []entry{{"echo big", time.Time{}}, {"echo late", time.Time{}}, {"echo zero", epoch(0)}},
			wantConsumed: -1,
		},
		{
			name:         "garbage bytes are kept as commands",
			data:         "\x00\xff\xfe\n#1700000000\n\x1b[31mred\r\n",
			want:         []entry{{"\x00\xff\xfe", time.Time{}}, {"\x1b[31mred\r", epoch(1700000000)}},
			wantConsumed: -1,
		},
		{
			name:         "garbage without a newline consumes nothing",
			data:         "\x00\x01\x02garbage",
			wantConsumed: 0,
		},
		{
			name:         "UTF-8 commands",
			data:         "#1700000000\necho 'héllo ✓ 日本語'\n",
			want:         []entry{{"echo 'héllo ✓ 日本語'", epoch(1700000000)}},
			wantConsumed: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, consumed := spaces.ParseHistory([]byte(tt.data))
			if len(got) == 0 {
				got = nil
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("entries = %q\nwant      %q", got, tt.want)
			}
			want := tt.wantConsumed
			if want < 0 {
				want = len(tt.data)
			}
			if consumed != want {
				t.Errorf("consumed = %d, want %d", consumed, want)
			}
		})
	}
}
