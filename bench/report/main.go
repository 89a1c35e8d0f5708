// Command report renders every benchmark result (bench/results/*.json) into one markdown file.
//
//	go run ./bench/report -results bench/results -out bench/RESULTS.md
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/bpo-dev/bpo/bench"

	"github.com/bpo-dev/bpo/internal/atomicfile"
)

func main() {
	results := flag.String("results", "bench/results", "directory of <name>.json result files")
	out := flag.String("out", "bench/RESULTS.md", "markdown file to write")
	flag.Parse()
	rs, err := bench.ReadResults(*results)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	if err := atomicfile.Write(*out, []byte(bench.Markdown(rs))); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	fmt.Printf("report: %d result file(s) -> %s\n", len(rs), *out)
}
