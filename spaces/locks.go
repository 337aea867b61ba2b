package spaces

import "sync"

// keyedMutex serialises lifecycle operations per space name, so that two
// concurrent creates (or a create and a destroy) of one name never interleave.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

// Lock locks name and returns the function that unlocks it.
func (k *keyedMutex) Lock(name string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyedEntry)
	}
	e := k.locks[name]
	if e == nil {
		e = &keyedEntry{}
		k.locks[name] = e
	}
	e.refs++
	k.mu.Unlock()

	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.locks, name)
		}
		k.mu.Unlock()
	}
}
