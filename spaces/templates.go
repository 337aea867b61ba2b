package spaces

import (
	"context"
	"strings"
)

// Templates lists templates sorted by name.
func (s *Service) Templates(ctx context.Context, c Caller) ([]Template, error) {
	if err := s.authorize(ctx, c, "", ActRead); err != nil {
		return nil, err
	}
	return s.cfg.Store.Templates(ctx)
}

// Template returns one template.
func (s *Service) Template(ctx context.Context, c Caller, name string) (Template, error) {
	if err := s.authorize(ctx, c, "", ActRead); err != nil {
		return Template{}, err
	}
	name = strings.ToLower(name)
	if err := ValidateTemplateName(name); err != nil {
		return Template{}, TemplateNotFound()
	}
	return s.cfg.Store.Template(ctx, name)
}

// PutTemplate parses, validates and stores a template from its YAML.
func (s *Service) PutTemplate(ctx context.Context, c Caller, src string) (Template, error) {
	if err := s.authorize(ctx, c, "", ActTemplates); err != nil {
		return Template{}, err
	}
	t, err := ParseTemplate(src)
	if err != nil {
		return Template{}, err
	}
	if err := s.audit(ctx, c, "", EventTemplateUpsert, map[string]any{"template": t.Name}); err != nil {
		return Template{}, err
	}
	if err := s.cfg.Store.PutTemplate(ctx, t); err != nil {
		return Template{}, err
	}
	return t, nil
}

// DeleteTemplate removes a template.
func (s *Service) DeleteTemplate(ctx context.Context, c Caller, name string) error {
	if err := s.authorize(ctx, c, "", ActTemplates); err != nil {
		return err
	}
	name = strings.ToLower(name)
	if err := ValidateTemplateName(name); err != nil {
		return TemplateNotFound()
	}
	if _, err := s.cfg.Store.Template(ctx, name); err != nil {
		return err
	}
	if err := s.audit(ctx, c, "", EventTemplateDelete, map[string]any{"template": name}); err != nil {
		return err
	}
	return s.cfg.Store.DeleteTemplate(ctx, name)
}

// Events lists audit events: the newest q.Limit, oldest first. The
// events of one space need read on it (or admin); the whole log needs
// admin.
func (s *Service) Events(ctx context.Context, c Caller, q AuditQuery) ([]Event, error) {
	acts := []Action{ActAdmin}
	if q.Space != "" {
		acts = []Action{ActRead, ActAdmin}
	}
	if err := s.authorize(ctx, c, q.Space, acts...); err != nil {
		return nil, err
	}
	if q.Limit < 1 || q.Limit > 1000 {
		return nil, FieldErrorf(ErrInvalid, FieldLimit, "must be between 1 and 1000")
	}
	return s.cfg.Store.Events(ctx, q)
}
