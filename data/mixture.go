package data

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Source is one file of a dataset mixture.
type Source struct {
	// Path is the file to read.
	Path string
	// Fraction is the share of the file's rows to use, in (0, 1]; 0 means
	// the whole file. LoadAll keeps the rows with index below
	// floor(Fraction·rows), where rows counts every record of the file,
	// skipped ones included. This is what the alignment handbook's dataset
	// mixer does (select the first int(fraction·len(dataset)) rows, before
	// concatenating and shuffling).
	Fraction float64
}

// String formats s as ParseMixture reads it.
func (s Source) String() string {
	if s.Fraction == 0 || s.Fraction == 1 {
		return s.Path
	}
	return s.Path + ":" + strconv.FormatFloat(s.Fraction, 'g', -1, 64)
}

// ParseMixture parses a comma-separated list of files, each optionally
// followed by ":fraction", for example "a.jsonl:0.5,b.parquet". A file
// without a fraction is used whole. Fractions must lie in (0, 1]. The text
// after a file's last colon is taken as a fraction only when it parses as a
// number, so paths may contain colons; they may not contain commas.
func ParseMixture(spec string) ([]Source, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, fmt.Errorf("data: empty dataset mixture")
	}
	var out []Source
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("data: mixture %q: empty entry", spec)
		}
		src := Source{Path: item, Fraction: 1}
		if i := strings.LastIndexByte(item, ':'); i >= 0 {
			if f, err := strconv.ParseFloat(strings.TrimSpace(item[i+1:]), 64); err == nil {
				src = Source{Path: strings.TrimSpace(item[:i]), Fraction: f}
				if src.Path == "" {
					return nil, fmt.Errorf("data: mixture entry %q: no file", item)
				}
				if !(f > 0 && f <= 1) {
					return nil, fmt.Errorf("data: mixture entry %q: fraction %v is not in (0, 1]", item, f)
				}
			}
		}
		out = append(out, src)
	}
	return out, nil
}

// LoadAll reads every source in order and returns their Pairs concatenated,
// each source cut to its Fraction (see Source.Fraction). It stops early,
// with ctx's error, when ctx is done. Skipped records are reported to
// opts.OnSkip only when they fall within a source's fraction.
func LoadAll(ctx context.Context, sources []Source, opts Options) ([]Pair, error) {
	var all []Pair
	for _, src := range sources {
		if src.Fraction == 0 {
			src.Fraction = 1
		}
		if !(src.Fraction > 0 && src.Fraction <= 1) {
			return nil, fmt.Errorf("data: %s: fraction %v is not in (0, 1]", src.Path, src.Fraction)
		}
		pairs, err := loadSource(ctx, src, opts)
		if err != nil {
			return nil, err
		}
		all = append(all, pairs...)
	}
	return all, nil
}

func loadSource(ctx context.Context, src Source, opts Options) ([]Pair, error) {
	type indexed struct {
		record int // 0-based index of the record in the file
		skip   error
		pair   Pair
	}
	var got []indexed
	inner := opts
	var r *Reader
	inner.OnSkip = func(err error) { got = append(got, indexed{record: r.Records() - 1, skip: err}) }
	r, err := Open(src.Path, inner)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("data: %s: %w", src.Path, err)
		}
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		got = append(got, indexed{record: r.Records() - 1, pair: p})
	}
	keep := int(math.Floor(src.Fraction * float64(r.Records())))
	pairs := make([]Pair, 0, len(got))
	for _, g := range got {
		if g.record >= keep {
			break
		}
		if g.skip != nil {
			if opts.OnSkip != nil {
				opts.OnSkip(g.skip)
			}
			continue
		}
		pairs = append(pairs, g.pair)
	}
	return pairs, nil
}

// SplitEval holds out ceil(ratio·len(pairs)) pairs (or examples), chosen
// at random with the given seed, as an evaluation split (the size rule of
// Hugging Face's train_test_split). The split depends only on len(pairs),
// ratio and seed (see [HeldOut]). Both halves keep the input order.
func SplitEval[T any](pairs []T, ratio float64, seed int64) (train, eval []T) {
	held := HeldOut(len(pairs), ratio, seed)
	if held == nil {
		return pairs, nil
	}
	for i, p := range pairs {
		if held[i] {
			eval = append(eval, p)
		} else {
			train = append(train, p)
		}
	}
	return train, eval
}

// HeldOut marks which of n records an evaluation split of the given ratio
// and seed holds out: ceil(ratio·n) of them, at random. It returns nil when
// nothing is held out: n is 0, or ratio is 0 or less. A ratio of 1 or more
// is clamped so that one training record remains.
func HeldOut(n int, ratio float64, seed int64) []bool {
	if n == 0 || !(ratio > 0) {
		return nil
	}
	k := min(int(math.Ceil(ratio*float64(n))), n-1)
	if k <= 0 {
		return nil
	}
	// A partial Fisher-Yates shuffle driven by PCG, whose output the
	// math/rand/v2 documentation fixes, so that a split never changes with
	// the Go version. The modulo bias is below n/2⁶⁴.
	pcg := rand.NewPCG(uint64(seed), 0x5eed_e7a1)
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	held := make([]bool, n)
	for i := range k {
		j := i + int(pcg.Uint64()%uint64(n-i))
		perm[i], perm[j] = perm[j], perm[i]
		held[perm[i]] = true
	}
	return held
}
