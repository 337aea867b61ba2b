package nodetest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumNames are the executables Browser looks for, in order.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// ChromiumPath returns the headless browser the browser tests use:
// $CHROMIUM_PATH, else the first of chromium, chromium-browser and
// google-chrome on PATH.
func ChromiumPath() (string, bool) {
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		return p, true
	}
	for _, n := range chromiumNames {
		if p, err := exec.LookPath(n); err == nil {
			return p, true
		}
	}
	return "", false
}

// Browser starts headless Chromium for one test and returns its chromedp
// context, ended when the test ends. A missing browser fails the test:
// `make test-deps` (and so .ci/run) installs Debian's chromium package.
func Browser(tb testing.TB) context.Context {
	tb.Helper()
	path, ok := ChromiumPath()
	if !ok {
		tb.Fatalf("no Chromium found (looked for $CHROMIUM_PATH and %v): run `make test-deps`, or apt-get install -y chromium", chromiumNames)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(filepath.Join(tb.TempDir(), "chromium")),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	tb.Cleanup(func() { cancel(); cancelAlloc() })
	// The first action starts the browser; it must not run under a timeout.
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("starting Chromium (%s): %v", path, err)
	}
	return ctx
}

// ScreenshotDir returns the folder for a test's screenshots:
// $CLAWDSPACE_SCREENSHOTS/<test>, else a new folder under the system's
// temporary folder. It is kept after the test so a person can look.
func ScreenshotDir(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv("CLAWDSPACE_SCREENSHOTS")
	if base == "" {
		dir, err := os.MkdirTemp("", "clawdspace-screenshots-"+time.Now().Format("150405")+"-")
		if err != nil {
			tb.Fatal(err)
		}
		return dir
	}
	dir := filepath.Join(base, filepath.Base(tb.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}
