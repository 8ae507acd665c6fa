package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// Every run that bench/README.md shows, other than the reference run
// itself and -index, writes its report outside bench/results: a run
// writes latest.md and latest.json there, the committed reference, and a
// timestamped report that joins the index.
func TestReadmeRunsKeepTheReference(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	runs := regexp.MustCompile("go run \\./bench[^`\\n#]*").FindAllString(string(b), -1)
	if len(runs) < 3 {
		t.Fatalf("found only %q", runs)
	}
	for _, run := range runs {
		run = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(run), "&"))
		if run == "go run ./bench" || strings.Contains(run, " -index") {
			continue
		}
		if !strings.Contains(run, " -out /tmp/") {
			t.Errorf("%q writes its report into bench/results, over latest.*", run)
		}
	}
}
