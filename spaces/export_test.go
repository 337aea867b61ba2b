package spaces

// Busy reports whether auto-sleep would leave space name alone because
// something holds it (a test hook).
func (s *Service) Busy(name string) bool { return s.busy.busy(name) }
