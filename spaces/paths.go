package spaces

import (
	"strings"
)

// maxPathLen bounds a client path; Linux's PATH_MAX.
const maxPathLen = 4096

// maxPartLen bounds one part of a path; Linux's NAME_MAX.
const maxPartLen = 255

// WorkspacePathOf turns a client path into an absolute path in the space.
// Clients give paths relative to /workspace with a leading "/" ("/src/a.go");
// "src/a.go" and "/workspace/src/a.go" mean the same. Paths are refused, not
// cleaned: "..", "." and empty components (doubled slashes) are errors, so a
// path means exactly what it says.
func WorkspacePathOf(p string) (string, error) {
	if p == "" {
		return "", FieldErrorf(ErrInvalid, FieldPath, "is required")
	}
	if len(p) > maxPathLen {
		return "", FieldErrorf(ErrInvalid, FieldPath, "is longer than %d bytes", maxPathLen)
	}
	if strings.ContainsAny(p, "\x00") {
		return "", FieldErrorf(ErrInvalid, FieldPath, "contains a NUL byte")
	}
	rel := strings.TrimPrefix(p, "/")
	if rel == "workspace" {
		rel = ""
	} else if r, ok := strings.CutPrefix(rel, "workspace/"); ok {
		rel = r
	}
	rel = strings.TrimSuffix(rel, "/")
	if rel == "" {
		return WorkspacePath, nil
	}
	for _, c := range strings.Split(rel, "/") {
		switch c {
		case "":
			return "", FieldErrorf(ErrInvalid, FieldPath, "%q has an empty component (doubled slash)", p)
		case ".", "..":
			return "", FieldErrorf(ErrInvalid, FieldPath, "%q may not contain %q: paths stay inside /workspace", p, c)
		}
		if len(c) > maxPartLen {
			return "", Errorf(ErrInvalid, "a part of the path is longer than %d bytes", maxPartLen)
		}
	}
	return WorkspacePath + "/" + rel, nil
}

// DisplayPath shows an absolute path in the space the way clients write it:
// relative to /workspace with a leading "/".
func DisplayPath(abs string) string {
	if abs == WorkspacePath {
		return "/"
	}
	if r, ok := strings.CutPrefix(abs, WorkspacePath+"/"); ok {
		return "/" + r
	}
	return abs
}

// InWorkspace reports whether an absolute path is /workspace or below it.
func InWorkspace(abs string) bool {
	return abs == WorkspacePath || strings.HasPrefix(abs, WorkspacePath+"/")
}
