package engine

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/spaces"
)

// Namespaces let several nodes share one Docker engine without seeing each
// other's spaces. The default namespace ("") keeps the wire contract's names
// (container clawdspace-NAME, volume clawdspace-vol-NAME) and no namespace
// label, so spaces made by the older node are adopted. A namespace NS names
// container clawdspace-NS.NAME and volume clawdspace-vol-NS.NAME and labels
// both clawdspace.namespace=NS. Space names never hold a '.' (see
// spaces.ValidateName) and namespaces never do either, so no space of any
// namespace shares a container or volume name with another's.

// nsSep separates a namespace from the space name in Docker names. Docker
// allows it in container and volume names; space names forbid it.
const nsSep = "."

var namespaceRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,19}$`)

// ValidateNamespace checks an engine namespace: empty (the default), or 1 to
// 20 lowercase letters, digits and '-', starting with a letter.
func ValidateNamespace(ns string) error {
	if ns != "" && !namespaceRE.MatchString(ns) {
		return fmt.Errorf("invalid engine namespace %q: use 1 to 20 lowercase letters, digits and '-', starting with a letter (or none)", ns)
	}
	return nil
}

// crossesNamespace reports whether a space name holds the separator, so
// that its container and volume names would be another namespace's. The
// domain never passes such a name; Create and Remove check it anyway, as
// the volume paths have no label check to stop them.
func crossesNamespace(name string) bool { return strings.Contains(name, nsSep) }

// names holds the namespace and the name prefixes derived from it, so
// building a name stays one concatenation.
type names struct {
	ns, container, vol string
}

func newNames(ns string) names {
	n := names{ns: ns, container: spaces.ContainerPrefix, vol: spaces.VolumePrefix}
	if ns != "" {
		n.container += ns + nsSep
		n.vol += ns + nsSep
	}
	return n
}

// spaceFilters selects the spaces of this namespace as far as Docker
// filters can (label filters must all match). They cannot say "label
// absent", so the default namespace's answers also hold namespaced spaces,
// which callers drop with owns.
func (e *Engine) spaceFilters() client.Filters {
	f := make(client.Filters).Add("label", spaces.LabelKind+"="+spaces.LabelKindSpace)
	if e.names.ns != "" {
		f.Add("label", spaces.LabelNamespace+"="+e.names.ns)
	}
	return f
}

// Namespace returns the engine namespace; empty is the default.
func (e *Engine) Namespace() string { return e.names.ns }

// ContainerName returns the container name of a space in this namespace.
func (e *Engine) ContainerName(space string) string { return e.names.container + space }

// VolumeName returns the workspace volume name of a space in this namespace.
func (e *Engine) VolumeName(space string) string { return e.names.vol + space }

// owns reports whether labels are those of a space of this namespace.
func (e *Engine) owns(labels map[string]string) bool {
	return labels[spaces.LabelKind] == spaces.LabelKindSpace && labels[spaces.LabelNamespace] == e.names.ns
}

// isSpace reports whether a container is a space of this namespace: a node
// never acts on another namespace's container, nor on a foreign one.
func (e *Engine) isSpace(c *container.Config) bool {
	return c != nil && e.owns(c.Labels)
}
