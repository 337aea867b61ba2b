package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/adam91holt/clawdspace/api"
)

// CheckpointOptions are the settings of `checkpoint`, `restore` and `fork`.
type CheckpointOptions struct {
	IO      *IO
	Printer *printer
	Spaces  spaceFinder

	Name       string
	Checkpoint string
	Server     string
	JSON       bool
	// List and Delete are for checkpoint; Force for restore.
	List   bool
	Delete bool
	Force  bool
	// From and New are for fork: the source (NAME or NAME@CHECKPOINT) and
	// the new space; To forks onto another node (an export piped into an
	// import there).
	From string
	New  string
	To   string
	// Nodes picks the node of To.
	Nodes nodePicker
}

// NewCmdCheckpoint builds `clawdspace checkpoint`.
func NewCmdCheckpoint(d *Deps, runF func(*CheckpointOptions) error) *cobra.Command {
	o := &CheckpointOptions{IO: d.IO}
	cmd := &cobra.Command{
		Use:   "checkpoint NAME [CHECKPOINT]",
		Short: "Take, list or delete checkpoints of a space",
		Long: `Take a checkpoint of a space: its /workspace and its root filesystem changes, as they
are at one instant (a running space is frozen meanwhile and says for how long). Without a
CHECKPOINT name it is numbered. --list lists them; --delete removes one.`,
		Example: `  clawdspace checkpoint dev before-migration
  clawdspace checkpoint dev --list
  clawdspace checkpoint dev before-migration --delete`,
		Args: rangeArgs(1, "NAME", "CHECKPOINT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			if len(args) > 1 {
				o.Checkpoint = args[1]
			}
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Spaces, o.Printer = fl, newPrinter(d.IO, fl.cfg)
			if runF != nil {
				return runF(o)
			}
			return checkpointRun(cmd.Context(), o)
		},
	}
	addServerFlag(cmd, &o.Server)
	addJSONFlag(cmd, &o.JSON)
	cmd.Flags().BoolVarP(&o.List, "list", "l", false, "list the space's checkpoints")
	cmd.Flags().BoolVar(&o.Delete, "delete", false, "delete the checkpoint named")
	return cmd
}

// NewCmdRestore builds `clawdspace restore`.
func NewCmdRestore(d *Deps, runF func(*CheckpointOptions) error) *cobra.Command {
	o := &CheckpointOptions{IO: d.IO}
	cmd := &cobra.Command{
		Use:   "restore NAME CHECKPOINT",
		Short: "Put a space back to one of its checkpoints",
		Long: `Put a space back to a checkpoint: same name and settings, its /workspace and root
filesystem as they were. A running space comes back running. A checkpoint taken with
another image or template is refused, saying what differs, unless --force.`,
		Example: `  clawdspace restore dev before-migration`,
		Args:    exactArgs("NAME", "CHECKPOINT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name, o.Checkpoint = args[0], args[1]
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Spaces, o.Printer = fl, newPrinter(d.IO, fl.cfg)
			if runF != nil {
				return runF(o)
			}
			return restoreRun(cmd.Context(), o)
		},
	}
	addServerFlag(cmd, &o.Server)
	addJSONFlag(cmd, &o.JSON)
	cmd.Flags().BoolVarP(&o.Force, "force", "f", false, "restore even when the image or template differs")
	return cmd
}

// NewCmdFork builds `clawdspace fork`.
func NewCmdFork(d *Deps, runF func(*CheckpointOptions) error) *cobra.Command {
	o := &CheckpointOptions{IO: d.IO}
	cmd := &cobra.Command{
		Use:   "fork SOURCE NEW",
		Short: "Make a new space from a space or one of its checkpoints",
		Long: `Make the space NEW, independent of its source, from a space (SOURCE is NAME: its state
now, through a checkpoint that is removed once the fork is made) or from one of its
checkpoints (NAME@CHECKPOINT), with the source's settings, on the source's node; with
--to NODE on that node of the fleet (the archive streams across through this machine).`,
		Example: `  clawdspace fork dev dev-experiment
  clawdspace fork dev@before-migration dev-old
  clawdspace fork dev dev-gpu --to gpu-box`,
		Args: exactArgs("SOURCE", "NEW"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.From, o.New = args[0], args[1]
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Spaces, o.Nodes, o.Printer = fl, fl, newPrinter(d.IO, fl.cfg)
			if runF != nil {
				return runF(o)
			}
			return forkRun(cmd.Context(), o)
		},
	}
	addServerFlag(cmd, &o.Server)
	addJSONFlag(cmd, &o.JSON)
	cmd.Flags().StringVar(&o.To, "to", "", "make the fork on this node of the fleet")
	return cmd
}

func checkpointRun(ctx context.Context, o *CheckpointOptions) error {
	switch {
	case o.List && (o.Delete || o.Checkpoint != ""):
		return usageErrorf("--list takes only the space's name")
	case o.Delete && o.Checkpoint == "":
		return usageErrorf("--delete needs the CHECKPOINT to delete")
	}
	c, err := o.Spaces.FindSpace(ctx, o.Server, o.Name)
	if err != nil {
		return err
	}
	switch {
	case o.List:
		var out api.CheckpointList
		if err := c.Do(ctx, http.MethodGet, spacePath(o.Name, "/checkpoints"), nil, nil, &out); err != nil {
			return spaceError(o.Name, c, err)
		}
		if o.JSON {
			return writeJSON(o.IO.Out, out)
		}
		rows := [][]string{{"CHECKPOINT", "CREATED", "SIZE", "IMAGE", "TEMPLATE"}}
		for _, cp := range out.Checkpoints {
			rows = append(rows, []string{cp.Name, cp.Created, humanBytes(float64(cp.Size)), cp.Image, cp.Template})
		}
		if err := o.Printer.table(rows); err != nil {
			return err
		}
		_, err := fmt.Fprintf(o.IO.Out, "%d of %d checkpoints, %s\n", len(out.Checkpoints), out.Limit, humanBytes(float64(out.TotalBytes)))
		return err
	case o.Delete:
		var out api.Message
		if err := c.Do(ctx, http.MethodDelete, spacePath(o.Name, "/checkpoints/"+url.PathEscape(o.Checkpoint)), nil, nil, &out); err != nil {
			return spaceError(o.Name, c, err)
		}
		if o.JSON {
			return writeJSON(o.IO.Out, out)
		}
		_, err := fmt.Fprintf(o.IO.Out, "Deleted checkpoint %s of %s (on %s)\n", o.Checkpoint, o.Name, c.Name)
		return err
	}
	var out api.CheckpointAnswer
	if err := c.Do(ctx, http.MethodPost, spacePath(o.Name, "/checkpoints"), nil, api.CreateCheckpoint{Name: o.Checkpoint}, &out); err != nil {
		return spaceError(o.Name, c, err)
	}
	if o.JSON {
		return writeJSON(o.IO.Out, out)
	}
	frozen := time.Duration(out.FrozenMs * float64(time.Millisecond)).Round(time.Millisecond)
	_, err = fmt.Fprintf(o.IO.Out, "Checkpoint %s of %s taken on %s (%s, frozen %s)\n",
		out.Checkpoint.Name, o.Name, c.Name, humanBytes(float64(out.Checkpoint.Size)), frozen)
	return err
}

func restoreRun(ctx context.Context, o *CheckpointOptions) error {
	c, err := o.Spaces.FindSpace(ctx, o.Server, o.Name)
	if err != nil {
		return err
	}
	q := url.Values{}
	if o.Force {
		q.Set("force", "true")
	}
	var out struct {
		Space rawObject `json:"space"`
	}
	if err := c.Do(ctx, http.MethodPost, spacePath(o.Name, "/checkpoints/"+url.PathEscape(o.Checkpoint)+"/restore"), q, nil, &out); err != nil {
		return spaceError(o.Name, c, err)
	}
	if o.JSON {
		return writeJSON(o.IO.Out, out.Space)
	}
	s := decodeAs[api.Space](out.Space)
	_, err = fmt.Fprintf(o.IO.Out, "Restored %s to checkpoint %s on %s (%s)\n", o.Name, o.Checkpoint, c.Name, o.Printer.status(s.Status))
	return err
}

func forkRun(ctx context.Context, o *CheckpointOptions) error {
	src, cp, _ := strings.Cut(o.From, "@")
	c, err := o.Spaces.FindSpace(ctx, o.Server, src)
	if err != nil {
		return err
	}
	if o.To != "" {
		return forkTo(ctx, o, c, src, cp)
	}
	var out struct {
		Space rawObject `json:"space"`
	}
	if err := c.Do(ctx, http.MethodPost, "/spaces", nil, api.CreateSpace{Name: o.New, From: o.From}, &out); err != nil {
		return spaceError(src, c, err)
	}
	if o.JSON {
		out.Space["node"], out.Space["nodeUrl"] = c.Name, c.BaseURL
		return writeJSON(o.IO.Out, out.Space)
	}
	s := decodeAs[api.Space](out.Space)
	_, err = fmt.Fprintf(o.IO.Out, "Forked %s from %s on %s (%s)\n", s.Name, o.From, c.Name, o.Printer.status(s.Status))
	return err
}

// ArchiveOptions are the settings of `export` and `import`.
type ArchiveOptions struct {
	IO      *IO
	Printer *printer
	Spaces  spaceFinder
	Nodes   nodePicker

	Name       string
	Checkpoint string // export
	Server     string
	// File is the archive to write (export) or read (import); empty or
	// "-" is stdout or stdin.
	File string
	JSON bool
}

// NewCmdExport builds `clawdspace export`.
func NewCmdExport(d *Deps, runF func(*ArchiveOptions) error) *cobra.Command {
	o := &ArchiveOptions{IO: d.IO}
	cmd := &cobra.Command{
		Use:   "export NAME",
		Short: "Write a space (or one of its checkpoints) as one archive",
		Long: `Write a space as one tar archive: its settings, its root filesystem changes and its
/workspace, to stdout or -o FILE. The space is frozen a moment for an implicit checkpoint;
--checkpoint exports one of its checkpoints instead. import makes a space from it.`,
		Example: `  clawdspace export dev > dev.tar
  clawdspace export dev --checkpoint before -o before.tar`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Spaces, o.Nodes, o.Printer = fl, fl, newPrinter(d.IO, fl.cfg)
			if runF != nil {
				return runF(o)
			}
			return exportRun(cmd.Context(), o)
		},
	}
	addServerFlag(cmd, &o.Server)
	cmd.Flags().StringVar(&o.Checkpoint, "checkpoint", "", "export this checkpoint of the space")
	cmd.Flags().StringVarP(&o.File, "output", "o", "", "write the archive to this file (default: stdout)")
	return cmd
}

// NewCmdImport builds `clawdspace import`.
func NewCmdImport(d *Deps, runF func(*ArchiveOptions) error) *cobra.Command {
	o := &ArchiveOptions{IO: d.IO}
	cmd := &cobra.Command{
		Use:   "import NAME",
		Short: "Make a space from an archive of export",
		Long: `Make the space NAME from an archive that export wrote, read from stdin or -i FILE,
on a node (--server, or the default): with the archive's settings, its root filesystem
changes and its /workspace. The node needs the image the space was made with.`,
		Example: `  clawdspace import dev-copy < dev.tar
  clawdspace import dev-copy -i dev.tar --server gpu-box`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Spaces, o.Nodes, o.Printer = fl, fl, newPrinter(d.IO, fl.cfg)
			if runF != nil {
				return runF(o)
			}
			return importRun(cmd.Context(), o)
		},
	}
	addServerFlag(cmd, &o.Server)
	addJSONFlag(cmd, &o.JSON)
	cmd.Flags().StringVarP(&o.File, "input", "i", "", "read the archive from this file (default: stdin)")
	return cmd
}

func exportRun(ctx context.Context, o *ArchiveOptions) error {
	toFile := o.File != "" && o.File != "-"
	if !toFile && o.IO.StdoutTTY {
		return usageErrorf("the archive is binary: redirect stdout to a file, or give -o FILE")
	}
	c, err := o.Spaces.FindSpace(ctx, o.Server, o.Name)
	if err != nil {
		return err
	}
	q := url.Values{}
	if o.Checkpoint != "" {
		q.Set("checkpoint", o.Checkpoint)
	}
	resp, err := c.Stream(ctx, http.MethodGet, spacePath(o.Name, "/export"), q, "", nil, 0, "application/x-tar")
	if err != nil {
		return spaceError(o.Name, c, err)
	}
	defer resp.Body.Close()
	out := o.IO.Out
	if toFile {
		f, err := os.Create(o.File)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	n, err := io.Copy(out, resp.Body)
	if err != nil {
		if toFile {
			os.Remove(o.File)
		}
		return fmt.Errorf("the archive of %s was cut after %d bytes: %w", o.Name, n, err)
	}
	if toFile {
		if err := out.(*os.File).Close(); err != nil {
			return err
		}
	}
	fmt.Fprintf(o.IO.ErrOut, "Exported %s from %s (%s)\n", o.Name, c.Name, humanBytes(float64(n)))
	return nil
}

func importRun(ctx context.Context, o *ArchiveOptions) error {
	in, size := o.IO.In, int64(-1)
	if o.File != "" && o.File != "-" {
		f, err := os.Open(o.File)
		if err != nil {
			return err
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		in = f
	} else if o.IO.StdinTTY || in == nil {
		return usageErrorf("give the archive on stdin (clawdspace import NAME < FILE) or with -i FILE")
	}
	c, err := o.Nodes.Target(ctx, o.Server)
	if err != nil {
		return err
	}
	resp, err := c.Stream(ctx, http.MethodPost, "/spaces/import", url.Values{"name": {o.Name}}, "application/x-tar", in, size, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct {
		Space rawObject `json:"space"`
	}
	if err := decodeJSON(resp.Body, &out); err != nil {
		return fmt.Errorf("%s: reading the answer: %w", c.Name, err)
	}
	if o.JSON {
		out.Space["node"], out.Space["nodeUrl"] = c.Name, c.BaseURL
		return writeJSON(o.IO.Out, out.Space)
	}
	s := decodeAs[api.Space](out.Space)
	_, err = fmt.Fprintf(o.IO.Out, "Imported %s on %s (%s)\n", s.Name, c.Name, o.Printer.status(s.Status))
	return err
}

// MoveOptions are the settings of `move`.
type MoveOptions struct {
	IO      *IO
	Printer *printer
	Spaces  spaceFinder
	Nodes   nodePicker

	Name   string
	To     string
	Server string
	// Keep leaves the source in place (paused) once the copy works.
	Keep bool
	JSON bool
}

// NewCmdMove builds `clawdspace move`.
func NewCmdMove(d *Deps, runF func(*MoveOptions) error) *cobra.Command {
	o := &MoveOptions{IO: d.IO}
	cmd := &cobra.Command{
		Use:   "move NAME --to NODE",
		Short: "Move a space to another node",
		Long: `Move a space to another node: pause it (so nothing it does is lost), export it, import it
on NODE under the same name, check that it runs there, then destroy the source with its
volume and checkpoints (--keep leaves it, paused). If anything fails before the copy
runs, the source is resumed and stays where it was. Checkpoints do not move.`,
		Example: `  clawdspace move dev --to gpu-box`,
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			if o.To == "" {
				return usageErrorf("--to NODE is required")
			}
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Spaces, o.Nodes, o.Printer = fl, fl, newPrinter(d.IO, fl.cfg)
			if runF != nil {
				return runF(o)
			}
			return moveRun(cmd.Context(), o)
		},
	}
	addServerFlag(cmd, &o.Server)
	addJSONFlag(cmd, &o.JSON)
	cmd.Flags().StringVar(&o.To, "to", "", "the node to move the space to")
	cmd.Flags().BoolVar(&o.Keep, "keep", false, "keep the source (paused) once the copy runs")
	return cmd
}

func moveRun(ctx context.Context, o *MoveOptions) error {
	src, err := o.Spaces.FindSpace(ctx, o.Server, o.Name)
	if err != nil {
		return err
	}
	dst, err := o.Nodes.Target(ctx, o.To)
	if err != nil {
		return err
	}
	if strings.TrimRight(dst.BaseURL, "/") == strings.TrimRight(src.BaseURL, "/") && dst.Via == src.Via {
		return usageErrorf("%s is already on %s", o.Name, src.Name)
	}
	path := spacePath(o.Name, "")
	if err := src.Do(ctx, http.MethodPost, path+"/stop", nil, nil, nil); err != nil {
		return spaceError(o.Name, src, err)
	}
	undo := func(cause error) error {
		if err := src.Do(context.WithoutCancel(ctx), http.MethodPost, path+"/start", nil, nil, nil); err != nil {
			return fmt.Errorf("%w (and resuming %s on %s failed: %v)", cause, o.Name, src.Name, err)
		}
		return fmt.Errorf("%w; %s stays on %s", cause, o.Name, src.Name)
	}
	resp, err := src.Stream(ctx, http.MethodGet, path+"/export", nil, "", nil, 0, "application/x-tar")
	if err != nil {
		return undo(spaceError(o.Name, src, err))
	}
	imp, err := dst.Stream(ctx, http.MethodPost, "/spaces/import", url.Values{"name": {o.Name}}, "application/x-tar", resp.Body, -1, "application/json")
	resp.Body.Close()
	if err != nil {
		return undo(fmt.Errorf("importing on %s: %w", dst.Name, err))
	}
	imp.Body.Close()
	// The copy must run before the source goes.
	var ran struct {
		ExitCode int `json:"exitCode"`
	}
	if err := dst.Do(ctx, http.MethodPost, path+"/exec", nil, map[string]any{"command": "true"}, &ran); err != nil || ran.ExitCode != 0 {
		return fmt.Errorf("the copy on %s does not run (%v): both are kept, the source paused", dst.Name, err)
	}
	if !o.Keep {
		if err := src.Do(ctx, http.MethodDelete, path, url.Values{"removeVolume": {"true"}}, nil, nil); err != nil {
			return fmt.Errorf("the copy runs on %s, but removing the source on %s failed: %w", dst.Name, src.Name, err)
		}
	}
	if o.JSON {
		return writeJSON(o.IO.Out, map[string]any{"name": o.Name, "from": src.Name, "to": dst.Name, "toUrl": dst.BaseURL, "kept": o.Keep})
	}
	_, err = fmt.Fprintf(o.IO.Out, "Moved %s from %s to %s\n", o.Name, src.Name, dst.Name)
	return err
}

// forkTo forks onto another node: the source's (or checkpoint's) archive
// streams from its node into an import on o.To.
func forkTo(ctx context.Context, o *CheckpointOptions, c *Client, src, cp string) error {
	dst, err := o.Nodes.Target(ctx, o.To)
	if err != nil {
		return err
	}
	q := url.Values{}
	if cp != "" {
		q.Set("checkpoint", cp)
	}
	resp, err := c.Stream(ctx, http.MethodGet, spacePath(src, "/export"), q, "", nil, 0, "application/x-tar")
	if err != nil {
		return spaceError(src, c, err)
	}
	defer resp.Body.Close()
	imp, err := dst.Stream(ctx, http.MethodPost, "/spaces/import", url.Values{"name": {o.New}}, "application/x-tar", resp.Body, -1, "application/json")
	if err != nil {
		return fmt.Errorf("importing on %s: %w", dst.Name, err)
	}
	defer imp.Body.Close()
	var out struct {
		Space rawObject `json:"space"`
	}
	if err := decodeJSON(imp.Body, &out); err != nil {
		return fmt.Errorf("%s: reading the answer: %w", dst.Name, err)
	}
	if o.JSON {
		out.Space["node"], out.Space["nodeUrl"] = dst.Name, dst.BaseURL
		return writeJSON(o.IO.Out, out.Space)
	}
	s := decodeAs[api.Space](out.Space)
	_, err = fmt.Fprintf(o.IO.Out, "Forked %s from %s on %s to %s (%s)\n", s.Name, o.From, c.Name, dst.Name, o.Printer.status(s.Status))
	return err
}
