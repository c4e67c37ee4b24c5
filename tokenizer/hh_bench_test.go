package tokenizer

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"os"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

// hhChosen reads the chosen texts of Anthropic's hh-rlhf harmless-base test
// split (2312 records, about 1.6 MB of text).
func hhChosen(b testing.TB) []string {
	b.Helper()
	path := testutil.SharedPath(b, "fixtures", "data", "hh-rlhf-harmless-base-test.jsonl.gz")
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		b.Fatalf("%s: %v", path, err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	var texts []string
	for line := 1; sc.Scan(); line++ {
		var rec struct {
			Chosen string `json:"chosen"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			b.Fatalf("%s:%d: %v", path, line, err)
		}
		texts = append(texts, rec.Chosen)
	}
	if err := sc.Err(); err != nil {
		b.Fatalf("%s: %v", path, err)
	}
	return texts
}

// BenchmarkEncodeHH measures tokenization throughput on real dialogue text:
// every iteration encodes all the chosen texts of the hh-rlhf file, and
// MB/s counts their UTF-8 bytes. "warm" keeps the per-word cache between
// iterations, as a long run over a data set does; "cold" empties it before
// each iteration, as the first pass over new text does.
//
//	go test ./tokenizer -run '^$' -bench EncodeHH -benchtime 5x
func BenchmarkEncodeHH(b *testing.B) {
	texts := hhChosen(b)
	var size int64
	for _, s := range texts {
		size += int64(len(s))
	}
	for _, tc := range []struct {
		name string
		load func(testing.TB) *Tokenizer
	}{
		{"llama2", loadLlama},
		{"qwen3", loadQwen3},
	} {
		for _, cold := range []bool{false, true} {
			name := tc.name + "/warm"
			if cold {
				name = tc.name + "/cold"
			}
			b.Run(name, func(b *testing.B) {
				tk := tc.load(b)
				var tokens int
				for b.Loop() {
					if cold {
						tk.model.mu.Lock()
						tk.model.cache = map[string][]int{}
						tk.model.mu.Unlock()
					}
					tokens = 0
					for _, s := range texts {
						ids, err := tk.Encode(s, false)
						if err != nil {
							b.Fatal(err)
						}
						tokens += len(ids)
					}
				}
				sec := b.Elapsed().Seconds()
				b.ReportMetric(float64(size)*float64(b.N)/1e6/sec, "MB/s")
				b.ReportMetric(float64(tokens)*float64(b.N)/sec, "tokens/s")
			})
		}
	}
}
