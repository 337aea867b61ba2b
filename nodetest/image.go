package nodetest

import (
	"testing"

	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest/testimage"
)

// The test images (see package testimage).
const (
	TestImage   = testimage.TestImage
	BrokenImage = testimage.BrokenImage
	BareImage   = testimage.BareImage
)

// EnsureImages imports the test images once per process when missing.
func EnsureImages(tb testing.TB, c *client.Client) {
	tb.Helper()
	testimage.Ensure(tb, c)
}
