package node

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/adam91holt/clawdspace/spaces"
)

// Key rules: a key is at least MinKeyLength characters and holds at least
// MinKeyBits bits by its own letters (length times the Shannon entropy of
// its character frequencies), so "aaaaaaaaaaaaaaaa" or "passwordpassword"
// are refused while any key of 20 random characters passes.
const (
	MinKeyLength = 16
	MinKeyBits   = 64
)

// CheckAPIKey says why key is not fit to guard a node: whitespace around
// it (a key that could never match what clients send), too short, or too
// predictable (ErrWeakKey). An empty key is not checked.
func CheckAPIKey(key string) error {
	if key == "" {
		return nil
	}
	if strings.TrimFunc(key, unicode.IsSpace) != key {
		return errors.New("the API key starts or ends with whitespace, which clients never send: remove it")
	}
	if strings.ContainsFunc(key, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return errors.New("the API key contains whitespace or a control character: use printable characters only")
	}
	if n := len([]rune(key)); n < MinKeyLength {
		return fmt.Errorf("%w: it has %d characters, at least %d are needed", ErrWeakKey, n, MinKeyLength)
	}
	if bits := KeyBits(key); bits < MinKeyBits {
		return fmt.Errorf("%w: it holds about %.0f bits, at least %d are needed", ErrWeakKey, bits, MinKeyBits)
	}
	return nil
}

// ErrWeakKey is the error of a key too short or too predictable.
var ErrWeakKey = errors.New("the API key is too weak (make one with: openssl rand -base64 32)")

// KeyBits estimates the entropy of key in bits: its length times the
// Shannon entropy of its character frequencies. It is an upper bound for
// keys with structure (a sequence, a word), and the right figure for keys
// of random characters.
func KeyBits(key string) float64 {
	counts := map[rune]int{}
	n := 0
	for _, r := range key {
		counts[r]++
		n++
	}
	var h float64
	for _, c := range counts {
		p := float64(c) / float64(n)
		h -= p * math.Log2(p)
	}
	return h * float64(n)
}

// Defaults of the wrong-key backoff.
const (
	// DefaultAuthFreeFailures is how many wrong keys an address may send
	// before it must wait.
	DefaultAuthFreeFailures = 5
	// DefaultAuthBackoff is the first wait; each later failure doubles it.
	DefaultAuthBackoff = time.Second
	// DefaultAuthMaxBackoff caps the wait.
	DefaultAuthMaxBackoff = 5 * time.Minute
)

// authLimiter slows down guessing of the API key: an address that sent
// more than free wrong keys waits base, then twice as long after each
// further failure, up to max. While it waits, keys from it are not looked
// at (answered 429), so the wait cannot be used to test guesses; a right
// key ends its failures. An address quiet for max starts afresh.
type authLimiter struct {
	mu     sync.Mutex
	free   int
	base   time.Duration
	max    time.Duration
	exempt map[string]bool
	addrs  map[string]*authFailures
}

type authFailures struct {
	n     int
	last  time.Time
	until time.Time
}

// maxAuthAddrs bounds the addresses remembered; past it, those whose wait
// is over are forgotten.
const maxAuthAddrs = 10000

// wait is how long addr must still wait before its key is looked at.
func (l *authLimiter) wait(addr string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f, ok := l.addrs[addr]; ok && now.Before(f.until) {
		return f.until.Sub(now)
	}
	return 0
}

// fail counts a wrong key from addr and returns how long it must now wait
// (0 while it has free failures left).
func (l *authLimiter) fail(addr string, now time.Time) time.Duration {
	if l.exempt[addr] {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.addrs == nil {
		l.addrs = make(map[string]*authFailures)
	}
	if len(l.addrs) >= maxAuthAddrs {
		for a, f := range l.addrs {
			if !now.Before(f.until) && now.Sub(f.last) > l.max {
				delete(l.addrs, a)
			}
		}
	}
	f := l.addrs[addr]
	if f == nil || now.Sub(f.last) > l.max {
		f = &authFailures{}
		l.addrs[addr] = f
	}
	f.n++
	f.last = now
	over := f.n - l.free
	if over <= 0 {
		return 0
	}
	d := l.max
	if over <= 30 && l.base<<(over-1) < l.max {
		d = l.base << (over - 1)
	}
	f.until = now.Add(d)
	return d
}

// succeed forgets the failures of addr.
func (l *authLimiter) succeed(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.addrs, addr)
}

// RetryLater is an error of a request refused for now: 429 with a
// Retry-After of After.
type RetryLater struct {
	After time.Duration
	Msg   string
}

func (e *RetryLater) Error() string { return e.Msg }

// retrySeconds is After as whole seconds for Retry-After, at least 1.
func (e *RetryLater) retrySeconds() string {
	return strconv.Itoa(max(1, int(math.Ceil(e.After.Seconds()))))
}

// checkKey decides a request that presents key: the caller of the API key,
// or a refusal (401 for a wrong key, 429 while its address must wait after
// too many). Every refusal is logged and audited (bounded per address).
func (s *Server) checkKey(r *http.Request, key string) (spaces.Caller, error) {
	addr := remoteIP(r.RemoteAddr)
	now := s.clock.Now()
	if d := s.keys.wait(addr, now); d > 0 {
		err := &RetryLater{After: d, Msg: "Too many wrong API keys from " + addr + ": try again in " + (&RetryLater{After: d}).retrySeconds() + " s"}
		s.log.Debug("auth rate limited", "path", r.URL.Path, "remote", r.RemoteAddr, "wait", d)
		// Audited apart from wrong keys (one row per address and
		// interval each), so the log shows when the slowing down began.
		s.recordLimited(r, spaces.Caller{Actor: "anonymous"}, "", err.Msg, addr+"|rate-limited")
		return spaces.Caller{}, err
	}
	if !s.isKey(key) {
		if d := s.keys.fail(addr, now); d > 0 {
			s.log.Warn("wrong API keys: slowing down this address", "remote", addr, "wait", d)
		}
		return spaces.Caller{}, s.refuseUnknown(r, "Unauthorized: wrong API key")
	}
	s.keys.succeed(addr)
	return spaces.CallerAPIKey(), nil
}

// staticPeerAddrs are the IP addresses of the configured (static) fleet
// members: the node's own peers, which hold the key, are never slowed
// down by wrong keys sent from their address.
func staticPeerAddrs(f Fleet) map[string]bool {
	if f == nil {
		return map[string]bool{}
	}
	return f.StaticAddrs()
}
