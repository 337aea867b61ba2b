package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/adam91holt/clawdspace/api"
)

// FilesOptions are the settings of the `clawdspace files` commands.
type FilesOptions struct {
	IO      *IO
	Printer *printer
	Spaces  spaceFinder

	Name      string
	Server    string
	Remote    string
	Local     string
	Recursive bool
	JSON      bool
}

// NewCmdFiles builds `clawdspace files` and its subcommands.
func NewCmdFiles(d *Deps) *cobra.Command {
	cmd := newGroup("files", "List, copy and delete files in a space's /workspace")
	cmd.Long = `Work with the files of a space's /workspace. Remote paths are relative to /workspace
(/src/main.go is /workspace/src/main.go). Copies stream, so files of any size work;
- stands for stdin or stdout.`
	cmd.AddCommand(
		newFilesCmd(d, nil, "ls NAME [PATH]", []string{"list"}, "List a folder (default /)",
			"  clawdspace files ls dev /src\n  clawdspace files ls dev --json", rangeArgs(1, "NAME", "PATH"), filesLsRun),
		newFilesCmd(d, nil, "get NAME REMOTE [LOCAL|-]", nil, "Download a file (to LOCAL, default its name here; - for stdout)",
			"  clawdspace files get dev /out/report.pdf\n  clawdspace files get dev /data.bin - | sha256sum", rangeArgs(2, "NAME", "REMOTE", "LOCAL"), filesGetRun),
		newFilesCmd(d, nil, "put NAME LOCAL|- [REMOTE]", nil, "Upload a file or stdin (REMOTE defaults to /NAME-OF-LOCAL)",
			"  clawdspace files put dev ./data.csv /data/\n  tar cz src | clawdspace files put dev - /src.tgz", rangeArgs(2, "NAME", "LOCAL", "REMOTE"), filesPutRun),
		newFilesCmd(d, nil, "rm NAME PATH", nil, "Delete a file, or a folder with -r",
			"  clawdspace files rm dev /tmp.txt\n  clawdspace files rm -r dev /build", exactArgs("NAME", "PATH"), filesRmRun),
		newFilesCmd(d, nil, "mkdir NAME PATH", nil, "Create a folder and its parents",
			"  clawdspace files mkdir dev /data/raw", exactArgs("NAME", "PATH"), filesMkdirRun),
	)
	return cmd
}

func newFilesCmd(d *Deps, runF func(*FilesOptions) error, use string, aliases []string, short, example string,
	args cobra.PositionalArgs, run func(context.Context, *FilesOptions) error) *cobra.Command {
	o := &FilesOptions{IO: d.IO}
	verb := strings.Fields(use)[0]
	cmd := &cobra.Command{
		Use:     use,
		Aliases: aliases,
		Short:   short,
		Example: example,
		Args:    args,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			switch verb {
			case "ls":
				o.Remote = "/"
				if len(args) > 1 {
					o.Remote = args[1]
				}
			case "get":
				o.Remote = args[1]
				if len(args) > 2 {
					o.Local = args[2]
				}
			case "put":
				o.Local = args[1]
				if len(args) > 2 {
					o.Remote = args[2]
				}
			default:
				o.Remote = args[1]
			}
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Spaces, o.Printer = fl, newPrinter(d.IO, fl.cfg)
			if runF != nil {
				return runF(o)
			}
			return run(cmd.Context(), o)
		},
	}
	addServerFlag(cmd, &o.Server)
	addJSONFlag(cmd, &o.JSON)
	if verb == "rm" {
		cmd.Flags().BoolVarP(&o.Recursive, "recursive", "r", false, "delete a folder with everything in it")
	}
	return cmd
}

// spacePath is the API path of a space's route ("" for the space itself).
func spacePath(name, route string) string {
	return "/spaces/" + url.PathEscape(name) + route
}

func filesLsRun(ctx context.Context, o *FilesOptions) error {
	c, err := o.Spaces.FindSpace(ctx, o.Server, o.Name)
	if err != nil {
		return err
	}
	var out struct {
		Entries []rawObject `json:"entries"`
	}
	if err := c.Do(ctx, http.MethodGet, spacePath(o.Name, "/files"), url.Values{"path": {o.Remote}}, nil, &out); err != nil {
		return spaceError(o.Name, c, err)
	}
	if o.JSON {
		if out.Entries == nil {
			out.Entries = []rawObject{}
		}
		return writeJSON(o.IO.Out, out.Entries)
	}
	rows := [][]string{{"TYPE", "MODE", "SIZE", "MODIFIED", "NAME"}}
	for _, raw := range out.Entries {
		e := decodeAs[api.FileEntry](raw)
		name := e.Name
		if e.Type == "dir" {
			name += "/"
		}
		size := humanBytes(float64(e.Size))
		if e.Type == "dir" {
			size = "-"
		}
		mod := time.UnixMilli(e.MtimeMs).Format("2006-01-02 15:04")
		rows = append(rows, []string{e.Type, orDash(e.Mode), size, mod, name})
	}
	if len(rows) == 1 {
		return nil
	}
	return o.Printer.table(rows)
}

func filesGetRun(ctx context.Context, o *FilesOptions) error {
	c, err := o.Spaces.FindSpace(ctx, o.Server, o.Name)
	if err != nil {
		return err
	}
	local := o.Local
	if local == "" {
		local = path.Base(strings.TrimRight(o.Remote, "/"))
		if local == "/" || local == "." || local == "" {
			return usageErrorf("give LOCAL: %q has no file name", o.Remote)
		}
	} else if fi, err := os.Stat(local); err == nil && fi.IsDir() {
		local = filepath.Join(local, path.Base(strings.TrimRight(o.Remote, "/")))
	}
	resp, err := c.Stream(ctx, http.MethodGet, spacePath(o.Name, "/file"), url.Values{"path": {o.Remote}, "raw": {"true"}}, "", nil, 0, "")
	if err != nil {
		return spaceError(o.Name, c, err)
	}
	defer resp.Body.Close()
	if local == "-" {
		n, err := io.Copy(o.IO.Out, resp.Body)
		return copyError(n, resp.ContentLength, err, c)
	}
	// Write beside the target and rename, so a failed download never
	// leaves half a file under the real name.
	tmp, err := os.CreateTemp(filepath.Dir(local), "."+filepath.Base(local)+".part-*")
	if err != nil {
		return fmt.Errorf("creating %s: %w", local, err)
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, resp.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err := copyError(n, resp.ContentLength, err, c); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), local); err != nil {
		return fmt.Errorf("saving %s: %w", local, err)
	}
	if o.JSON {
		return writeJSON(o.IO.Out, map[string]any{"remote": o.Remote, "local": local, "size": n})
	}
	_, err = fmt.Fprintf(o.IO.Out, "Downloaded %s (%s) to %s\n", o.Remote, humanBytes(float64(n)), local)
	return err
}

func copyError(n, want int64, err error, c *Client) error {
	if err != nil {
		return fmt.Errorf("%s: copying: %w", c.Name, err)
	}
	if want >= 0 && n != want {
		return fmt.Errorf("%s: the download ended after %d of %d bytes", c.Name, n, want)
	}
	return nil
}

func filesPutRun(ctx context.Context, o *FilesOptions) error {
	remote := o.Remote
	var body io.Reader
	size := int64(-1)
	if o.Local == "-" {
		if remote == "" || strings.HasSuffix(remote, "/") {
			return usageErrorf("give REMOTE, a file path, when uploading stdin")
		}
		if o.IO.In == nil {
			return errors.New("no stdin")
		}
		body = o.IO.In
	} else {
		f, err := os.Open(o.Local)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return fmt.Errorf("%s is a folder: upload an archive (tar cz DIR | clawdspace files put NAME - /DIR.tgz)", o.Local)
		}
		body, size = f, fi.Size()
		switch {
		case remote == "":
			remote = "/" + filepath.Base(o.Local)
		case strings.HasSuffix(remote, "/"):
			remote += filepath.Base(o.Local)
		}
	}
	c, err := o.Spaces.FindSpace(ctx, o.Server, o.Name)
	if err != nil {
		return err
	}
	resp, err := c.Stream(ctx, http.MethodPut, spacePath(o.Name, "/file"), url.Values{"path": {remote}}, "application/octet-stream", body, size, "application/json")
	if err != nil {
		return spaceError(o.Name, c, err)
	}
	defer resp.Body.Close()
	var out struct {
		Size *int64 `json:"size"`
	}
	_ = decodeJSON(resp.Body, &out)
	n := int64(-1)
	if out.Size != nil {
		n = *out.Size
	}
	if o.JSON {
		return writeJSON(o.IO.Out, map[string]any{"remote": remote, "size": n, "space": o.Name, "node": c.Name})
	}
	_, err = fmt.Fprintf(o.IO.Out, "Uploaded %s to %s:%s\n", humanBytes(float64(max(n, 0))), o.Name, remote)
	return err
}

func filesRmRun(ctx context.Context, o *FilesOptions) error {
	c, err := o.Spaces.FindSpace(ctx, o.Server, o.Name)
	if err != nil {
		return err
	}
	q := url.Values{"path": {o.Remote}}
	if o.Recursive {
		q.Set("recursive", "true")
	}
	if err := c.Do(ctx, http.MethodDelete, spacePath(o.Name, "/file"), q, nil, nil); err != nil {
		var ae *APIError
		if errors.As(err, &ae) && strings.Contains(ae.Message, "pass recursive=true") {
			ae.Message = fmt.Sprintf("%s is a folder: use -r to delete it with its contents", o.Remote)
		}
		return spaceError(o.Name, c, err)
	}
	return filesDone(o, c, "Deleted")
}

func filesMkdirRun(ctx context.Context, o *FilesOptions) error {
	c, err := o.Spaces.FindSpace(ctx, o.Server, o.Name)
	if err != nil {
		return err
	}
	if err := c.Do(ctx, http.MethodPost, spacePath(o.Name, "/mkdir"), nil, map[string]string{"path": o.Remote}, nil); err != nil {
		return spaceError(o.Name, c, err)
	}
	return filesDone(o, c, "Created")
}

func filesDone(o *FilesOptions, c *Client, verb string) error {
	if o.JSON {
		return writeJSON(o.IO.Out, map[string]any{"path": o.Remote, "space": o.Name, "node": c.Name, "message": "OK"})
	}
	_, err := fmt.Fprintf(o.IO.Out, "%s %s:%s\n", verb, o.Name, o.Remote)
	return err
}
