package spaces

import (
	"regexp"
	"strconv"
	"strings"
)

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	memoryRE = regexp.MustCompile(`^(\d+)([kmgKMG]?)$`)
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

const (
	maxNameLen = 63 // a container hostname is limited to 63 characters
	// minMemory is the smallest limit the engine accepts.
	minMemory = 6 << 20
	maxCPUs   = 64
	// minCPUs is the engine's smallest CPU quota.
	minCPUs = 0.01
)

// ValidateName checks a space name: letters, digits, '_' and '-' only.
func ValidateName(name string) error {
	switch {
	case name == "":
		return FieldErrorf(ErrInvalid, FieldName, "is required")
	case len(name) > maxNameLen:
		return FieldErrorf(ErrInvalid, FieldName, "must be at most %d characters", maxNameLen)
	case !nameRE.MatchString(name):
		return FieldErrorf(ErrInvalid, FieldName, "may contain only letters, digits, '_' and '-'")
	case strings.HasPrefix(name, "-") || strings.HasPrefix(name, "_"):
		return FieldErrorf(ErrInvalid, FieldName, "must start with a letter or digit")
	}
	return nil
}

// ParseMemory parses a memory size of the contract's form ^\d+(k|m|g)?$; a
// bare number means megabytes. It returns bytes.
func ParseMemory(s string) (int64, error) {
	m := memoryRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, FieldErrorf(ErrInvalid, FieldMemory, "%q must be a number with an optional unit k, m or g (a bare number means megabytes), e.g. \"2g\"", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, FieldErrorf(ErrInvalid, FieldMemory, "%q is too large", s)
	}
	var unit int64 = 1 << 20
	switch strings.ToLower(m[2]) {
	case "k":
		unit = 1 << 10
	case "g":
		unit = 1 << 30
	}
	if n > (1<<62)/unit {
		return 0, FieldErrorf(ErrInvalid, FieldMemory, "%q is too large", s)
	}
	b := n * unit
	if b < minMemory {
		return 0, FieldErrorf(ErrInvalid, FieldMemory, "%q is below the minimum of 6m", s)
	}
	return b, nil
}

// ValidateCPUs checks a CPU count against the contract's bounds and the host.
func ValidateCPUs(cpus float64, hostCPUs int) error {
	if !(cpus > 0) || cpus > maxCPUs {
		return FieldErrorf(ErrInvalid, FieldCPUs, "must be greater than 0 and at most %d", maxCPUs)
	}
	if cpus < minCPUs {
		return FieldErrorf(ErrInvalid, FieldCPUs, "must be at least %g", minCPUs)
	}
	if hostCPUs > 0 && cpus > float64(hostCPUs) {
		return FieldErrorf(ErrInvalid, FieldCPUs, "must be at most %d on this node", hostCPUs)
	}
	return nil
}

// ValidateEnv checks environment variable names and values.
func ValidateEnv(env map[string]string) error {
	for k, v := range env {
		if !envKeyRE.MatchString(k) {
			return FieldErrorf(ErrInvalid, FieldEnv, "name %q must be letters, digits and '_' and not start with a digit", k)
		}
		if strings.ContainsRune(v, 0) {
			return FieldErrorf(ErrInvalid, FieldEnv, "%s must not contain a NUL byte", k)
		}
	}
	return nil
}

// imageRE is the grammar of an image reference as the engine reads it
// ([registry[:port]/]path[:tag][@digest]): lower-case path parts joined by
// '.', '_', '__' or dashes, a tag of word characters, dots and dashes, and
// nothing a shell or the engine's command line would read as more than a
// name (no spaces, no leading '-').
var imageRE = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]+)?/)?` +
	`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*` +
	`(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,})?$`)

// maxImageLen bounds an image reference (the engine's own limit is 255 for
// the name part).
const maxImageLen = 512

// ValidateImage checks an image reference, for a create and for a template
// when it is saved: the same rule at both doors.
func ValidateImage(image string) error {
	if len(image) > maxImageLen || !imageRE.MatchString(image) {
		return FieldErrorf(ErrInvalid, FieldImage, "%q is not a valid image reference (e.g. clawdspace:latest or registry.example:5000/team/image:tag)", truncateImage(image))
	}
	return nil
}

// truncateImage keeps an error message about a huge image short.
func truncateImage(s string) string {
	if cut, ok := truncateUTF8(s, 80); ok {
		return cut + "…"
	}
	return s
}
