package node

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/spaces"
)

// PathArg names a file or folder of a space.
type PathArg struct {
	SpaceArg
	Path string `json:"path" jsonschema:"a path inside /workspace (absolute, or relative to /workspace)"`
}

// ListFilesIn names a folder.
type ListFilesIn struct {
	SpaceArg
	Path string `json:"path,omitempty" jsonschema:"a folder inside /workspace (default /workspace)"`
}

// ListFilesOut is a folder's entries.
type ListFilesOut struct {
	Path    string          `json:"path"`
	Entries []api.FileEntry `json:"entries"`
}

// ReadFileIn is a part of a file to read.
type ReadFileIn struct {
	PathArg
	Offset   int64  `json:"offset,omitempty" jsonschema:"first byte to read (default 0)"`
	Length   *int64 `json:"length,omitempty" jsonschema:"at most this many bytes (default 262144, at most 8388608)"`
	Encoding string `json:"encoding,omitempty" jsonschema:"text, base64, or empty to choose: text when the bytes are UTF-8, base64 otherwise"`
}

// ReadFileOut is the part of the file read.
type ReadFileOut struct {
	Path string `json:"path"`
	// Size is the whole file's.
	Size   int64 `json:"size"`
	Offset int64 `json:"offset"`
	// Length is how many bytes came back.
	Length int64 `json:"length"`
	// Truncated: the file goes on after what came back.
	Truncated     bool   `json:"truncated"`
	Encoding      string `json:"encoding" jsonschema:"text or base64: which of text and contentBase64 holds the bytes"`
	Text          string `json:"text,omitempty"`
	ContentBase64 string `json:"contentBase64,omitempty"`
}

// WriteFileIn is a whole file to write.
type WriteFileIn struct {
	PathArg
	Text          *string `json:"text,omitempty" jsonschema:"the file's content as text"`
	ContentBase64 *string `json:"contentBase64,omitempty" jsonschema:"the file's content as base64, for binary files (instead of text)"`
}

// WriteFileOut is what was written.
type WriteFileOut struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// DeleteFileIn names what to delete.
type DeleteFileIn struct {
	PathArg
	Recursive bool `json:"recursive,omitempty" jsonschema:"delete a folder with everything in it"`
}

func (s *Server) addFileTools(srv *mcp.Server, acts map[string]spaces.Action) {
	ro := &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: ptr(false)}
	addTool(s, srv, acts, spaces.ActFiles, &mcp.Tool{Name: "list_files", Annotations: ro,
		Description: "List a folder of a space's workspace: names, types, sizes, modes and modification times."},
		func(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in ListFilesIn) (ListFilesOut, error) {
			if in.Path == "" {
				in.Path = "/"
			}
			abs, entries, err := s.cfg.Spaces.ListFiles(ctx, c, in.Name, in.Path)
			if err != nil {
				return ListFilesOut{}, err
			}
			out := ListFilesOut{Path: spaces.DisplayPath(abs), Entries: []api.FileEntry{}}
			for _, e := range entries {
				out.Entries = append(out.Entries, api.FileEntryFrom(e))
			}
			return out, nil
		})
	addTool(s, srv, acts, spaces.ActFiles, &mcp.Tool{Name: "read_file", Annotations: ro,
		Description: "Read a file of a space: as text when it is UTF-8, as base64 otherwise (or as asked with encoding). " +
			"Big files come in parts: offset and length pick one, truncated says more follows."},
		s.mcpReadFile)
	addTool(s, srv, acts, spaces.ActFiles, &mcp.Tool{Name: "write_file",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true), IdempotentHint: true, OpenWorldHint: ptr(false)},
		Description: fmt.Sprintf("Write a whole file of a space (replaced if it exists; folders made as needed), from text or base64; at most %d bytes.", mcpMaxFileBytes)},
		s.mcpWriteFile)
	addTool(s, srv, acts, spaces.ActFiles, &mcp.Tool{Name: "delete_file",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true), IdempotentHint: true, OpenWorldHint: ptr(false)},
		Description: "Delete a file, or a folder with recursive."},
		func(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in DeleteFileIn) (MessageOut, error) {
			return MessageOut{"OK"}, s.cfg.Spaces.DeleteFile(ctx, c, in.Name, in.Path, in.Recursive)
		})
	addTool(s, srv, acts, spaces.ActFiles, &mcp.Tool{Name: "make_dir",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), IdempotentHint: true, OpenWorldHint: ptr(false)},
		Description: "Make a folder (and its parents) in a space's workspace."},
		func(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in PathArg) (MessageOut, error) {
			return MessageOut{"OK"}, s.cfg.Spaces.MakeDir(ctx, c, in.Name, in.Path)
		})
}

func (s *Server) mcpReadFile(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in ReadFileIn) (ReadFileOut, error) {
	length := int64(mcpDefaultRead)
	if in.Length != nil {
		if *in.Length < 0 || *in.Length > mcpMaxRead {
			return ReadFileOut{}, spaces.Errorf(spaces.ErrInvalid, "length must be between 0 and %d", mcpMaxRead)
		}
		length = *in.Length
	}
	if in.Offset < 0 {
		return ReadFileOut{}, spaces.Errorf(spaces.ErrInvalid, "offset must be 0 or more")
	}
	switch in.Encoding {
	case "", "text", "base64":
	default:
		return ReadFileOut{}, spaces.Errorf(spaces.ErrInvalid, "encoding must be text or base64")
	}
	info, rc, err := s.cfg.Spaces.OpenFile(ctx, c, in.Name, in.Path)
	if err != nil {
		return ReadFileOut{}, err
	}
	defer rc.Close()
	if in.Offset > 0 {
		if sk, ok := rc.(io.Seeker); ok {
			_, err = sk.Seek(in.Offset, io.SeekStart)
		} else {
			_, err = io.CopyN(io.Discard, rc, in.Offset)
		}
		if err != nil && err != io.EOF {
			return ReadFileOut{}, fmt.Errorf("reading file: %w", err)
		}
	}
	data, err := io.ReadAll(io.LimitReader(rc, length))
	if err != nil {
		return ReadFileOut{}, fmt.Errorf("reading file: %w", err)
	}
	more := in.Offset+int64(len(data)) < info.Size
	out := ReadFileOut{Path: spaces.DisplayPath(info.Path), Size: info.Size, Offset: in.Offset}
	enc := in.Encoding
	if enc == "" {
		enc = "base64"
		if text, ok := textPart(data, more); ok {
			data, enc = text, "text"
			more = in.Offset+int64(len(data)) < info.Size
		}
	}
	out.Length, out.Truncated, out.Encoding = int64(len(data)), more, enc
	if enc == "text" {
		out.Text = string(data)
	} else {
		out.ContentBase64 = base64.StdEncoding.EncodeToString(data)
	}
	return out, nil
}

// textPart returns data as text when it is UTF-8 without NUL bytes; a
// character cut by the end of a part (more follows) is left to the next.
func textPart(data []byte, more bool) ([]byte, bool) {
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, false
	}
	if utf8.Valid(data) {
		return data, true
	}
	for cut := 1; more && cut < utf8.UTFMax && cut < len(data); cut++ {
		if utf8.Valid(data[:len(data)-cut]) {
			return data[:len(data)-cut], true
		}
	}
	return nil, false
}

func (s *Server) mcpWriteFile(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in WriteFileIn) (WriteFileOut, error) {
	var data []byte
	switch {
	case in.Text != nil && in.ContentBase64 != nil:
		return WriteFileOut{}, spaces.Errorf(spaces.ErrInvalid, "give text or contentBase64, not both")
	case in.Text != nil:
		data = []byte(*in.Text)
	case in.ContentBase64 != nil:
		var err error
		if data, err = base64.StdEncoding.DecodeString(*in.ContentBase64); err != nil {
			return WriteFileOut{}, spaces.Errorf(spaces.ErrInvalid, "contentBase64 is not valid base64")
		}
	default:
		return WriteFileOut{}, spaces.Errorf(spaces.ErrInvalid, "text or contentBase64 is required")
	}
	if limit := min(s.cfg.MaxFileBytes, mcpMaxFileBytes); int64(len(data)) > limit {
		return WriteFileOut{}, errFileTooLarge(limit)
	}
	if err := s.cfg.Spaces.WriteFile(ctx, c, in.Name, in.Path, int64(len(data)), bytes.NewReader(data)); err != nil {
		return WriteFileOut{}, err
	}
	abs, _ := spaces.WorkspacePathOf(in.Path)
	return WriteFileOut{Path: spaces.DisplayPath(abs), Size: int64(len(data))}, nil
}
