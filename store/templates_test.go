package store

import (
	"errors"
	"reflect"
	"testing"

	"github.com/adam91holt/clawdspace/spaces"
)

func templateNames(ts []spaces.Template) []string {
	names := []string{}
	for _, t := range ts {
		names = append(names, t.Name)
	}
	return names
}

func TestTemplatesCRUD(t *testing.T) {
	ctx := t.Context()
	s := newTestStore(t)

	if _, err := s.Template(ctx, "small"); !errors.Is(err, spaces.ErrNotFound) {
		t.Fatalf("Template of empty store = %v, want ErrNotFound", err)
	}
	if got, err := s.Templates(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Templates of empty store = %v, %v; want none", got, err)
	}

	for _, tpl := range spaces.BuiltinTemplates("gpu:latest") {
		if err := s.PutTemplate(ctx, tpl); err != nil {
			t.Fatalf("PutTemplate(%s): %v", tpl.Name, err)
		}
	}
	// Names are normalized on the way in and on lookup.
	small := spaces.Template{Name: " Small ", Description: "tiny", Resources: spaces.TemplateResources{Memory: "512m", CPUs: new(0.5)}}
	if err := s.PutTemplate(ctx, small); err != nil {
		t.Fatal(err)
	}

	got, err := s.Templates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"default", "gpu", "lan", "offline", "small"}; !reflect.DeepEqual(templateNames(got), want) {
		t.Errorf("Templates names = %v, want %v", templateNames(got), want)
	}

	for _, b := range spaces.BuiltinTemplates("gpu:latest") {
		got, err := s.Template(ctx, b.Name)
		if err != nil {
			t.Fatalf("Template(%s): %v", b.Name, err)
		}
		if !reflect.DeepEqual(got, b) {
			t.Errorf("Template(%s) = %+v, want %+v", b.Name, got, b)
		}
	}

	gotSmall, err := s.Template(ctx, "SMALL")
	if err != nil {
		t.Fatal(err)
	}
	if gotSmall.Name != "small" || gotSmall.Resources.Memory != "512m" || gotSmall.Description != "tiny" {
		t.Errorf("Template(SMALL) = %+v", gotSmall)
	}

	// PutTemplate replaces.
	small.Description = "tinier"
	if err := s.PutTemplate(ctx, small); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Template(ctx, "small"); err != nil || got.Description != "tinier" {
		t.Errorf("after update Template = %+v, %v; want description tinier", got, err)
	}

	if err := s.DeleteTemplate(ctx, "Small"); err != nil {
		t.Fatalf("DeleteTemplate: %v", err)
	}
	if _, err := s.Template(ctx, "small"); !errors.Is(err, spaces.ErrNotFound) {
		t.Errorf("Template after delete = %v, want ErrNotFound", err)
	}
	err = s.DeleteTemplate(ctx, "small")
	if !errors.Is(err, spaces.ErrNotFound) {
		t.Errorf("second DeleteTemplate = %v, want ErrNotFound", err)
	}
	if msg, _ := spaces.Message(err); msg != "Template not found" {
		t.Errorf("not-found message = %q, want %q", msg, "Template not found")
	}
}

func TestPutTemplateInvalid(t *testing.T) {
	tests := []struct {
		name string
		tpl  spaces.Template
	}{
		{name: "empty name", tpl: spaces.Template{}},
		{name: "bad name", tpl: spaces.Template{Name: "../x"}},
		{name: "bad network", tpl: spaces.Template{Name: "x", Network: spaces.TemplateNetwork{Mode: "wifi"}}},
	}
	s := newTestStore(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.PutTemplate(t.Context(), tt.tpl); !errors.Is(err, spaces.ErrInvalid) {
				t.Errorf("PutTemplate = %v, want ErrInvalid", err)
			}
			if err := s.EnsureTemplate(t.Context(), tt.tpl); !errors.Is(err, spaces.ErrInvalid) {
				t.Errorf("EnsureTemplate = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestEnsureTemplate(t *testing.T) {
	tests := []struct {
		name     string
		existing *spaces.Template
		ensure   spaces.Template
		want     string // description afterwards
	}{
		{
			name:   "missing is created",
			ensure: spaces.Template{Name: "default", Description: "builtin"},
			want:   "builtin",
		},
		{
			name:     "owner's edit survives",
			existing: &spaces.Template{Name: "default", Description: "edited by owner"},
			ensure:   spaces.Template{Name: "Default", Description: "builtin"},
			want:     "edited by owner",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			s := newTestStore(t)
			if tt.existing != nil {
				if err := s.PutTemplate(ctx, *tt.existing); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.EnsureTemplate(ctx, tt.ensure); err != nil {
				t.Fatalf("EnsureTemplate: %v", err)
			}
			got, err := s.Template(ctx, "default")
			if err != nil {
				t.Fatal(err)
			}
			if got.Description != tt.want {
				t.Errorf("description = %q, want %q", got.Description, tt.want)
			}
		})
	}
}

func TestTemplatesSkipsUnparsableRow(t *testing.T) {
	ctx := t.Context()
	s := newTestStore(t)
	if err := s.PutTemplate(ctx, spaces.Template{Name: "good"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.rw.ExecContext(ctx, `INSERT INTO templates (name, yaml, managed, updated_at) VALUES ('bad', 'name: bad\nbogus: 1\n', 0, 0)`); err != nil {
		t.Fatal(err)
	}
	got, err := s.Templates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"good"}; !reflect.DeepEqual(templateNames(got), want) {
		t.Errorf("Templates names = %v, want %v", templateNames(got), want)
	}
	_, err = s.Template(ctx, "bad")
	if err == nil || errors.Is(err, spaces.ErrInvalid) || errors.Is(err, spaces.ErrNotFound) {
		t.Errorf("Template(bad) = %v, want a plain (server) error", err)
	}
}
