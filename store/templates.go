package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

const (
	selectTemplateSQL  = `SELECT yaml FROM templates WHERE name = ?`
	selectTemplatesSQL = `SELECT name, yaml FROM templates ORDER BY name`
	upsertTemplateSQL  = `INSERT INTO templates (name, yaml, managed, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET
			yaml = excluded.yaml, managed = excluded.managed, updated_at = excluded.updated_at`
	ensureTemplateSQL = `INSERT INTO templates (name, yaml, managed, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO NOTHING`
	deleteTemplateSQL = `DELETE FROM templates WHERE name = ?`
)

// templateKey is the form names are stored under, the same as
// spaces.Template.Normalize gives.
func templateKey(name string) string {
	return strings.ToLower(strings.TrimSpace(name))
}

// Template returns the template called name (case-insensitive), or
// spaces.TemplateNotFound.
func (s *Store) Template(ctx context.Context, name string) (spaces.Template, error) {
	var src string
	err := s.ro.QueryRowContext(ctx, selectTemplateSQL, templateKey(name)).Scan(&src)
	if errors.Is(err, sql.ErrNoRows) {
		return spaces.Template{}, spaces.TemplateNotFound()
	}
	if err != nil {
		return spaces.Template{}, fmt.Errorf("reading template %q: %w", name, err)
	}
	t, err := spaces.ParseStoredTemplate(src)
	if err != nil {
		// %v, not %w: a row that no longer parses is the server's fault, and
		// must not reach the client as the ErrInvalid of a bad request.
		return spaces.Template{}, fmt.Errorf("parsing stored template %q: %v", name, err)
	}
	return t, nil
}

// Templates returns every template, sorted by name. A stored template that no
// longer parses is logged and left out, so one bad row does not hide the rest.
func (s *Store) Templates(ctx context.Context) ([]spaces.Template, error) {
	rows, err := s.ro.QueryContext(ctx, selectTemplatesSQL)
	if err != nil {
		return nil, fmt.Errorf("listing templates: %w", err)
	}
	defer rows.Close()

	var ts []spaces.Template
	for rows.Next() {
		var name, src string
		if err := rows.Scan(&name, &src); err != nil {
			return nil, fmt.Errorf("reading template: %w", err)
		}
		t, err := spaces.ParseStoredTemplate(src)
		if err != nil {
			s.log.Error("skipping stored template that does not parse", "template", name, "err", err)
			continue
		}
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing templates: %w", err)
	}
	return ts, nil
}

// PutTemplate creates t or replaces the template of the same name. t is
// validated first; an invalid template is a spaces.ErrInvalid error.
func (s *Store) PutTemplate(ctx context.Context, t spaces.Template) error {
	return s.writeTemplate(ctx, upsertTemplateSQL, t)
}

// EnsureTemplate creates t unless a template of that name exists, which is
// left as it is (an owner's edits survive restarts).
func (s *Store) EnsureTemplate(ctx context.Context, t spaces.Template) error {
	return s.writeTemplate(ctx, ensureTemplateSQL, t)
}

func (s *Store) writeTemplate(ctx context.Context, query string, t spaces.Template) (err error) {
	defer s.mapFull(&err)
	// Normalize works on the copy: it lower-cases the name and rejects what
	// ParseTemplate would refuse to read back later.
	if err := t.Normalize(); err != nil {
		return fmt.Errorf("storing template %q: %w", t.Name, err)
	}
	if _, err := s.rw.ExecContext(ctx, query, t.Name, t.YAML(), t.Managed, time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("storing template %q: %w", t.Name, err)
	}
	return nil
}

// DeleteTemplate removes the template called name (case-insensitive), or
// returns spaces.TemplateNotFound when there is none.
func (s *Store) DeleteTemplate(ctx context.Context, name string) (err error) {
	defer s.mapFull(&err)
	res, err := s.rw.ExecContext(ctx, deleteTemplateSQL, templateKey(name))
	if err != nil {
		return fmt.Errorf("deleting template %q: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("deleting template %q: %w", name, err)
	}
	if n == 0 {
		return spaces.TemplateNotFound()
	}
	return nil
}
