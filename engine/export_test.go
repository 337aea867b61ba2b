package engine

// SetPoolListed sets a function called after each list of pool members,
// before the list is acted on: a test runs other claims there to make the
// list stale.
func SetPoolListed(e *Engine, f func(key string)) { e.poolListed = f }
