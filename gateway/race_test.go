//go:build race

package gateway

// raceEnabled tells tests that count allocations that the race detector is
// on: sync.Pool then drops a quarter of what is put back, on purpose.
const raceEnabled = true
