package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/adam91holt/clawdspace/api"
)

// TemplatesOptions are the settings of the `clawdspace templates` commands.
type TemplatesOptions struct {
	IO      *IO
	Printer *printer
	Nodes   targeter

	Server string
	// Name is the template (get, rm) or the YAML file, - for stdin (put).
	Name string
	JSON bool
}

// NewCmdTemplates builds `clawdspace templates` and its subcommands.
func NewCmdTemplates(d *Deps) *cobra.Command {
	cmd := newGroup("templates", "List, show, save and delete a node's space templates")
	cmd.Aliases = []string{"template"}
	cmd.Long = `Templates preset memory, CPUs, GPU, image and network for new spaces
(clawdspace create -t NAME). Each node keeps its own; --server picks the node.`
	cmd.AddCommand(
		newTemplatesCmd(d, "ls", []string{"list"}, "List templates", "  clawdspace templates ls", exactArgs(), templatesLsRun),
		newTemplatesCmd(d, "get NAME", []string{"show"}, "Print a template's YAML",
			"  clawdspace templates get default > my.yaml", exactArgs("NAME"), templatesGetRun),
		newTemplatesCmd(d, "put FILE|-", []string{"save"}, "Create or replace a template from a YAML file or stdin",
			"  clawdspace templates put my.yaml\n  printf 'name: small\\nresources: {memory: 512m}\\n' | clawdspace templates put -",
			exactArgs("FILE"), templatesPutRun),
		newTemplatesCmd(d, "rm NAME", []string{"delete"}, "Delete a template", "  clawdspace templates rm small",
			exactArgs("NAME"), templatesRmRun),
	)
	return cmd
}

func newTemplatesCmd(d *Deps, use string, aliases []string, short, example string, args cobra.PositionalArgs,
	run func(context.Context, *TemplatesOptions) error) *cobra.Command {
	o := &TemplatesOptions{IO: d.IO}
	cmd := &cobra.Command{
		Use: use, Aliases: aliases, Short: short, Example: example, Args: args,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				o.Name = args[0]
			}
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Nodes, o.Printer = fl, newPrinter(d.IO, fl.cfg)
			return run(cmd.Context(), o)
		},
	}
	addServerFlag(cmd, &o.Server)
	addJSONFlag(cmd, &o.JSON)
	return cmd
}

func templatesLsRun(ctx context.Context, o *TemplatesOptions) error {
	c, err := o.Nodes.Target(ctx, o.Server)
	if err != nil {
		return err
	}
	var out struct {
		Templates []rawObject `json:"templates"`
	}
	if err := c.Do(ctx, http.MethodGet, "/templates", nil, nil, &out); err != nil {
		return err
	}
	if o.JSON {
		if out.Templates == nil {
			out.Templates = []rawObject{}
		}
		return writeJSON(o.IO.Out, out.Templates)
	}
	rows := [][]string{{"NAME", "DESCRIPTION"}}
	for _, t := range out.Templates {
		name, _ := t["name"].(string)
		desc, _ := t["description"].(string)
		rows = append(rows, []string{name, desc})
	}
	return o.Printer.table(rows)
}

func templatesGetRun(ctx context.Context, o *TemplatesOptions) error {
	c, err := o.Nodes.Target(ctx, o.Server)
	if err != nil {
		return err
	}
	var out api.TemplateYAML
	if err := c.Do(ctx, http.MethodGet, "/templates/"+url.PathEscape(o.Name), nil, nil, &out); err != nil {
		return templateError(o.Name, err)
	}
	if o.JSON {
		return writeJSON(o.IO.Out, out)
	}
	y := out.YAML
	if !strings.HasSuffix(y, "\n") {
		y += "\n"
	}
	_, err = io.WriteString(o.IO.Out, y)
	return err
}

func templatesPutRun(ctx context.Context, o *TemplatesOptions) error {
	var b []byte
	var err error
	if o.Name == "-" {
		b, err = io.ReadAll(io.LimitReader(o.IO.In, 4<<20))
	} else {
		b, err = os.ReadFile(o.Name)
	}
	if err != nil {
		return fmt.Errorf("reading the template: %w", err)
	}
	c, err := o.Nodes.Target(ctx, o.Server)
	if err != nil {
		return err
	}
	var out struct {
		Template rawObject `json:"template"`
	}
	if err := c.Do(ctx, http.MethodPut, "/templates", nil, map[string]string{"yaml": string(b)}, &out); err != nil {
		return err
	}
	if o.JSON {
		return writeJSON(o.IO.Out, out.Template)
	}
	name, _ := out.Template["name"].(string)
	_, err = fmt.Fprintf(o.IO.Out, "Saved template %s on %s\n", name, c.Name)
	return err
}

func templatesRmRun(ctx context.Context, o *TemplatesOptions) error {
	c, err := o.Nodes.Target(ctx, o.Server)
	if err != nil {
		return err
	}
	if err := c.Do(ctx, http.MethodDelete, "/templates/"+url.PathEscape(o.Name), nil, nil, nil); err != nil {
		return templateError(o.Name, err)
	}
	if o.JSON {
		return writeJSON(o.IO.Out, map[string]string{"name": o.Name, "node": c.Name, "message": "OK"})
	}
	_, err = fmt.Fprintf(o.IO.Out, "Deleted template %s on %s\n", o.Name, c.Name)
	return err
}

func templateError(name string, err error) error {
	if ae, ok := err.(*APIError); ok && ae.Status == http.StatusNotFound {
		return fmt.Errorf("template %q not found on %s", name, ae.Node)
	}
	return err
}
