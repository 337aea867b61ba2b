package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/spaces"
)

// Online returns the node called name when it is online and trusted:
// the node a request for it may go to.
func (f *Fleet) Online(ctx context.Context, name string) (spaces.NodeHealth, error) {
	n, err := f.Lookup(ctx, name)
	if err != nil {
		return n, err
	}
	if n.Status != spaces.NodeOnline {
		return n, spaces.Errorf(spaces.ErrUnavailable, "Node %s is offline", n.Name)
	}
	return n, f.Trusted(ctx, n)
}

// Trusted checks that a discovered node is one the tailnet policy names
// as a node before requests, keys and bodies go to it: any device can
// answer /api/health. Nodes of CLAWDSPACE_NODES are trusted as set.
func (f *Fleet) Trusted(ctx context.Context, n spaces.NodeHealth) error {
	if !f.Discovers() {
		return nil
	}
	u, err := url.Parse(n.URL)
	if err == nil {
		var peer spaces.Caller
		if peer, err = f.cfg.WhoIs(ctx, u.Hostname()); err == nil && peer.Access.Can(spaces.ActNode, "") {
			return nil
		}
	}
	f.cfg.Logger.Warn("not forwarding to a device the policy does not name as a node", "node", n.Name, "url", n.URL, "err", err)
	return spaces.Errorf(spaces.ErrForbidden, "Forbidden: %s is not a trusted node (the tailnet policy gives it no node role on this node)", n.Name)
}

// EachOnline runs fn at once for each of nodes that requests may go to
// (online, and trusted now: a node may have lost its role since the last
// refresh), and waits for them. fn is called concurrently.
func (f *Fleet) EachOnline(ctx context.Context, nodes []spaces.NodeHealth, fn func(spaces.NodeHealth)) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		if n.Status != spaces.NodeOnline {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if f.Trusted(ctx, n) != nil {
				return // not a node of this fleet (any more)
			}
			fn(n)
		}()
	}
	wg.Wait()
}

// CanVouch says whether a request of c can be sent to another node: with
// the key c presented, or as a tailnet identity this node vouches for.
// A caller another node vouched for goes no further (one hop).
func (f *Fleet) CanVouch(c spaces.Caller) error {
	switch c.Kind {
	case spaces.KindAPIKey:
		return nil
	case spaces.KindPerson, spaces.KindTagged:
		if c.Addr != "" {
			return nil
		}
	}
	return spaces.Errorf(spaces.ErrForbidden, "Forbidden: requests for other nodes need an API key or a tailnet identity, and go one hop")
}

// Place picks the node for a space made with "node":"auto" among self
// (this node, live) and the online, trusted nodes of the fleet: a node
// with a GPU when one is wanted, else the one with the most free memory.
// This node wins ties.
func (f *Fleet) Place(ctx context.Context, self spaces.NodeHealth, gpu bool) (string, error) {
	nodes, _, err := f.Nodes(ctx)
	if err != nil {
		return "", err
	}
	best, bestFree := "", uint64(0)
	for i, n := range append([]spaces.NodeHealth{self}, nodes...) {
		if n.Status != spaces.NodeOnline || n.Capabilities == nil || (gpu && !n.Capabilities.GPU) {
			continue
		}
		if i > 0 && f.Trusted(ctx, n) != nil {
			continue
		}
		if best == "" || n.Capabilities.MemoryFree > bestFree {
			best, bestFree = n.Name, n.Capabilities.MemoryFree
		}
	}
	if best == "" {
		return "", noPlace(gpu)
	}
	return best, nil
}

// noPlace is the refusal of a placement that found no node.
func noPlace(gpu bool) error {
	if gpu {
		return spaces.Errorf(spaces.ErrConflict, "No online node has a GPU")
	}
	return spaces.Errorf(spaces.ErrConflict, "No online node can take the space")
}

// Call sends one API request to node n, which the caller has checked is
// trusted (Online, Trusted), with the credentials in creds, and decodes
// its answer into out. The node's refusals come back as domain errors
// with its message, so they reach the caller as the node gave them.
func (f *Fleet) Call(ctx context.Context, n spaces.NodeHealth, creds http.Header, method, path string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, n.URL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range creds {
		req.Header[k] = v
	}
	res, err := f.client.Do(req)
	if err != nil {
		return spaces.Errorf(spaces.ErrUnavailable, "Node %s did not answer", n.Name)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 32<<20))
	if err != nil {
		return spaces.Errorf(spaces.ErrUnavailable, "Node %s: answer cut short", n.Name)
	}
	if res.StatusCode/100 != 2 {
		var e api.Error
		_ = json.Unmarshal(data, &e)
		if e.Error == "" {
			e.Error = fmt.Sprintf("Node %s answered HTTP %d", n.Name, res.StatusCode)
		}
		return spaces.Errorf(kindOf(res.StatusCode), "%s", e.Error)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("node %s: reading its answer: %w", n.Name, err)
	}
	return nil
}

// kindOf is the domain error kind of another node's HTTP status.
func kindOf(status int) error {
	switch status {
	case http.StatusBadRequest:
		return spaces.ErrInvalid
	case http.StatusUnauthorized:
		return spaces.ErrUnauthorized
	case http.StatusForbidden:
		return spaces.ErrForbidden
	case http.StatusNotFound:
		return spaces.ErrNotFound
	case http.StatusConflict:
		return spaces.ErrConflict
	case http.StatusRequestEntityTooLarge:
		return spaces.ErrTooLarge
	}
	return spaces.ErrUnavailable
}
