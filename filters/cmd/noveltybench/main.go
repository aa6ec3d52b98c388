// Command noveltybench times the greedy ROUGE-L novelty filter on real
// Alpaca instructions and on 5K/20K/52K benchmark corpora (make bench): wall
// seconds and the process's CPU seconds (all threads), candidates per
// second, and the pairs scored in full or pruned by a bound. It exits
// cleanly, saying so, when ../shared is absent.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/selfinstruct/selfinstruct/filters"
	"github.com/selfinstruct/selfinstruct/filters/benchcorpus"
)

func main() {
	sizes := flag.String("sizes", "5000,20000,52000", "corpus sizes, comma-separated")
	seed := flag.Uint64("seed", 1, "corpus seed")
	threads := flag.Int("threads", 0, "worker goroutines (0 = GOMAXPROCS)")
	writeDir := flag.String("write", "", "also write each corpus as an Alpaca JSON list in this folder (for dedupe runs)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			slog.Error("noveltybench", "err", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			slog.Error("noveltybench", "err", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*sizes, *seed, *threads, *writeDir); err != nil {
		pprof.StopCPUProfile()
		slog.Error("noveltybench", "err", err)
		os.Exit(1)
	}
}

func run(sizeList string, seed uint64, threads int, writeDir string) error {
	ref, err := benchcorpus.ReferenceDir()
	if err != nil {
		fmt.Println("noveltybench: skipped:", err)
		return nil
	}
	seeds, err := loadSeeds(filepath.Join(ref, "alpaca_seed_tasks.jsonl"))
	if err != nil {
		return err
	}
	real, err := benchcorpus.Load(ref)
	if err != nil {
		return err
	}
	fmt.Printf("greedy ROUGE-L filter, threshold 0.7, pool starts with %d Alpaca seeds, GOMAXPROCS=%d threads=%d\n",
		len(seeds), runtime.GOMAXPROCS(0), threads)
	fmt.Printf("%-16s %8s %8s %8s %9s %9s %11s %12s %14s %8s\n",
		"corpus", "cands", "kept", "rejected", "seconds", "cpu s", "cands/s", "pairs full", "pairs pruned", "pruned%")
	raw := make([]string, 5000)
	for i := range raw {
		raw[i] = real[i].Instruction
	}
	if err := bench("raw5000", raw, seeds, threads); err != nil {
		return err
	}
	for _, f := range strings.Split(sizeList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("-sizes: bad size %q", f)
		}
		recs := benchcorpus.Generate(real, n, seed)
		cands := make([]string, n)
		for i, r := range recs {
			cands[i] = r.Instruction
		}
		if err := bench(fmt.Sprintf("corpus%d", n), cands, seeds, threads); err != nil {
			return err
		}
		if writeDir != "" {
			if err := writeCorpus(filepath.Join(writeDir, fmt.Sprintf("candidates_%d.json", n)), recs); err != nil {
				return err
			}
		}
	}
	return nil
}

func bench(name string, cands, seeds []string, threads int) error {
	runtime.GC()
	start, cpuStart := time.Now(), cpuTime()
	nv := filters.NewNovelty(filters.IndexOptions{Threads: threads}, 0.7)
	for _, s := range seeds {
		nv.AddPool(s)
	}
	if _, err := nv.Filter(context.Background(), cands); err != nil {
		return err
	}
	sec, cpu := time.Since(start).Seconds(), (cpuTime() - cpuStart).Seconds()
	st := nv.Stats()
	total := st.PairsFull + st.PairsPruned
	fmt.Printf("%-16s %8d %8d %8d %9.3f %9.3f %11.0f %12d %14d %7.2f%%\n", name, len(cands), st.Kept, st.Rejected,
		sec, cpu, float64(len(cands))/sec, st.PairsFull, st.PairsPruned, 100*float64(st.PairsPruned)/float64(max(total, 1)))
	return nil
}

func loadSeeds(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for line := 1; sc.Scan(); line++ {
		var t struct {
			Instruction string `json:"instruction"`
		}
		if err := json.Unmarshal(sc.Bytes(), &t); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		out = append(out, t.Instruction)
	}
	return out, sc.Err()
}

func writeCorpus(path string, recs []benchcorpus.Record) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(recs, "", "    ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
