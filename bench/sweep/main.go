// Command sweep runs relupo's training-step benchmark and the PyTorch
// baseline over a grid of sequence lengths, presets and precisions,
// alternating the two sides at every point, and draws tokens/s and peak
// memory against the sequence length as SVG plots.
//
// From the repository root, with a relupo binary built and PyTorch
// installed (Debian: python3-torch):
//
//	go build -o /tmp/relupo ./cmd/relupo
//	go run ./bench/sweep -relupo /tmp/relupo -presets 30m -seqs 256,512,1024,2048 -out docs/plots
//
// It merges its measurements into OUT/sweep.json (a point measured again
// replaces the old one; -fresh starts the file over) and draws
// OUT/<preset>-<dtype>.svg for every preset and precision in the file.
//
// The baseline is ../shared/reference/bench_train.py. Its OpenBLAS core type
// is never one inherited from the environment: with -coretype auto (the
// default) the sweep times PyTorch's float32 products under each candidate
// core type first (bench.FastestCoreType: bench/openblas_coretype.py, two
// 3-second runs each, as scripts/bench_side_by_side.sh does), uses the
// fastest and records it with every PyTorch point.
//
// A side whose resident memory passes -max-rss-gb is stopped, so that a
// baseline whose attention grows quadratically cannot take the machine
// down; such a point, and any other that fails, is recorded as missing
// with the reason and drawn without that point.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"log"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/relupo/relupo/bench"
)

// point is one measurement of one side.
type point struct {
	Side       string  `json:"side"` // relupo or pytorch
	Preset     string  `json:"preset"`
	DType      string  `json:"dtype"`
	Seq        int     `json:"seq"`
	TokensPerS float64 `json:"tokens_per_s"`
	PeakRSSGB  float64 `json:"peak_rss_GB"`
	CoreType   string  `json:"openblas_coretype,omitempty"` // the baseline's
	Error      string  `json:"error,omitempty"`
}

// stoppedForMemory reports whether the side was stopped at -max-rss-gb
// (see run) rather than failing.
func (p point) stoppedForMemory() bool { return strings.HasPrefix(p.Error, "stopped at ") }

// key identifies a point of the grid.
func (p point) key() string {
	return fmt.Sprintf("%s/%s/%s/%d", p.Side, p.Preset, p.DType, p.Seq)
}

func main() {
	relupo := flag.String("relupo", "relupo", "the relupo binary")
	python := flag.String("python", "/usr/bin/python3", "Python with torch")
	reference := flag.String("reference", "../shared/reference/bench_train.py", "the PyTorch baseline script")
	presets := flag.String("presets", "30m", "comma-separated presets")
	seqs := flag.String("seqs", "256,512,1024,2048", "comma-separated sequence lengths")
	dtypes := flag.String("dtypes", "f32", "comma-separated precisions: f32, bf16")
	seconds := flag.Float64("seconds", 20, "seconds each side times steps at each point (at least one step)")
	coretype := flag.String("coretype", "auto", `OPENBLAS_CORETYPE for the baseline: a name, "default" (OpenBLAS's own choice) or "auto" (the fastest measured)`)
	maxRSS := flag.Float64("max-rss-gb", 20, "stop a side whose resident memory passes this many GB")
	out := flag.String("out", "docs/plots", "output folder")
	replot := flag.Bool("replot", false, "only draw the plots again from OUT/sweep.json")
	fresh := flag.Bool("fresh", false, "start OUT/sweep.json over instead of merging into it")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("sweep: ")

	data := filepath.Join(*out, "sweep.json")
	var points []point
	if !*fresh {
		b, err := os.ReadFile(data)
		switch {
		case err == nil:
			if err := json.Unmarshal(b, &points); err != nil {
				log.Fatalf("%s: %v", data, err)
			}
		case *replot || !errors.Is(err, os.ErrNotExist):
			log.Fatal(err)
		}
	}
	if !*replot {
		var grid []int
		for _, s := range split(*seqs) {
			seq, err := strconv.Atoi(s)
			if err != nil || seq < 8 {
				log.Fatalf("-seqs: %q is not a sequence length", s)
			}
			grid = append(grid, seq)
		}
		ct := *coretype
		switch ct {
		case "auto":
			var err error
			if ct, err = bench.FastestCoreType(context.Background(), *python, "bench/openblas_coretype.py", 2, os.Stderr); err != nil {
				log.Fatal(err)
			}
		case "default":
			ct = "" // OpenBLAS's own choice
		}
		for _, preset := range split(*presets) {
			for _, dt := range split(*dtypes) {
				for _, seq := range grid {
					r := runRelupo(*relupo, preset, dt, seq, *seconds, *maxRSS)
					p := runPyTorch(*python, *reference, ct, preset, dt, seq, *seconds, *maxRSS)
					log.Printf("%s %s T=%d: relupo %.0f tokens/s %.2f GB %s; pytorch %.0f tokens/s %.2f GB %s", preset, dt, seq,
						r.TokensPerS, r.PeakRSSGB, r.Error, p.TokensPerS, p.PeakRSSGB, p.Error)
					points = merge(points, r, p)
				}
			}
		}
		if err := os.MkdirAll(*out, 0o755); err != nil {
			log.Fatal(err)
		}
		b, _ := json.MarshalIndent(points, "", "  ")
		if err := os.WriteFile(data+".tmp", append(b, '\n'), 0o644); err != nil {
			log.Fatal(err)
		}
		if err := os.Rename(data+".tmp", data); err != nil {
			log.Fatal(err)
		}
	}
	var curves []string // preset/dtype pairs in the data, in order of appearance
	seen := map[string]bool{}
	for _, q := range points {
		if c := q.Preset + "-" + q.DType; !seen[c] {
			seen[c] = true
			curves = append(curves, c)
		}
	}
	for _, c := range curves {
		preset, dt, _ := strings.Cut(c, "-")
		name := filepath.Join(*out, c+".svg")
		if err := drawPlots(name, preset, dt, points); err != nil {
			log.Fatal(err)
		}
		log.Printf("wrote %s", name)
	}
}

// merge replaces the points of ps measured again by their new values and
// appends the others.
func merge(ps []point, news ...point) []point {
	for _, n := range news {
		i := 0
		for i < len(ps) && ps[i].key() != n.key() {
			i++
		}
		if i < len(ps) {
			ps[i] = n
		} else {
			ps = append(ps, n)
		}
	}
	return ps
}

// split returns the non-empty, trimmed fields of a comma-separated list.
func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// runRelupo runs `relupo bench` at one point.
func runRelupo(bin, preset, dt string, seq int, seconds, maxRSS float64) point {
	p := point{Side: "relupo", Preset: preset, DType: dt, Seq: seq}
	cd := map[string]string{"f32": "float32", "bf16": "bf16"}[dt]
	return run(p, exec.Command(bin, "bench", "--preset", preset, "--seq", strconv.Itoa(seq), "--compute-dtype", cd,
		"--seconds", strconv.FormatFloat(seconds, 'f', -1, 64), "--json"), maxRSS)
}

// runPyTorch runs the baseline at one point.
func runPyTorch(python, script, coretype, preset, dt string, seq int, seconds, maxRSS float64) point {
	p := point{Side: "pytorch", Preset: preset, DType: dt, Seq: seq, CoreType: coretype}
	if coretype == "" {
		p.CoreType = "default"
	}
	cmd := exec.Command(python, script, preset, "2", strconv.FormatFloat(seconds, 'f', -1, 64), dt)
	cmd.Env = append(bench.TorchEnv(2, coretype), "SEQ="+strconv.Itoa(seq))
	return run(p, cmd, maxRSS)
}

// run runs one side's benchmark and reads its result into p. A watchdog
// reads the process's resident memory every 200 ms and kills it past
// maxRSS GB.
func run(p point, cmd *exec.Cmd, maxRSS float64) point {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		p.Error = err.Error()
		return p
	}
	done := make(chan struct{})
	over := make(chan float64, 1)
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if gb := rssGB(cmd.Process.Pid); gb > maxRSS {
					over <- gb
					cmd.Process.Kill()
					return
				}
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	select {
	case gb := <-over:
		p.Error = fmt.Sprintf("stopped at %.1f GB of resident memory (-max-rss-gb %g)", gb, maxRSS)
		p.PeakRSSGB = gb
		return p
	default:
	}
	if err != nil {
		p.Error = fmt.Sprintf("%v: %s", err, lastLine(stderr.Bytes()))
		return p
	}
	return parse(p, stdout.Bytes())
}

// rssGB is the resident memory of process pid in GB (VmRSS), 0 when it
// cannot be read.
func rssGB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1e6
		}
	}
	return 0
}

// parse reads the last JSON object of a benchmark's output into p.
func parse(p point, out []byte) point {
	var r struct {
		TokensPerS float64 `json:"tokens_per_s"`
		PeakRSSGB  float64 `json:"peak_rss_GB"`
	}
	if err := json.Unmarshal(lastObject(out), &r); err != nil || !(r.TokensPerS > 0) {
		p.Error = fmt.Sprintf("no result in %q", lastLine(out))
		return p
	}
	p.TokensPerS, p.PeakRSSGB = r.TokensPerS, r.PeakRSSGB
	return p
}

// lastObject is the last JSON object of the output: its last line, or the
// lines from the last that opens one (an indented object).
func lastObject(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndex(b, []byte("\n{")); i >= 0 && bytes.HasSuffix(b, []byte("}")) && !json.Valid(lastLine(b)) {
		return b[i+1:]
	}
	return lastLine(b)
}

func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return lines[len(lines)-1]
}

// drawPlots writes one SVG with two panels: tokens/s and peak RSS against the
// sequence length, one line per side. A point where a side was stopped for
// its memory is drawn as a cross: at the limit it reached in the memory
// panel, at zero in the speed panel.
func drawPlots(path, preset, dt string, points []point) error {
	const w, h = 5 * vg.Inch, 3.2 * vg.Inch
	colors := []color.Color{color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}}
	var ticks []plot.Tick
	for _, q := range points {
		if q.Preset == preset && q.DType == dt && !slices.ContainsFunc(ticks, func(t plot.Tick) bool { return t.Value == float64(q.Seq) }) {
			ticks = append(ticks, plot.Tick{Value: float64(q.Seq), Label: strconv.Itoa(q.Seq)})
		}
	}
	lo, hi := math.Inf(1), 0.0
	for _, t := range ticks {
		lo, hi = min(lo, t.Value), max(hi, t.Value)
	}
	img := vgsvg.New(2*w, h)
	for i, metric := range []string{"tokens/s", "peak RSS (GB)"} {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s %s: %s", preset, dt, metric)
		p.X.Label.Text = "tokens per sequence"
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.ConstantTicks(ticks)
		p.X.Min, p.X.Max = lo/1.2, hi*1.2 // room for the end labels
		p.Y.Label.Text = metric
		p.Y.Min = 0
		p.Legend.Top, p.Legend.Left = true, true
		p.Legend.XOffs = vg.Points(40)
		top := 0.0
		for j, side := range []string{"relupo", "pytorch"} {
			var xy, stopped plotter.XYs
			for _, q := range points {
				if q.Side != side || q.Preset != preset || q.DType != dt {
					continue
				}
				v := q.TokensPerS
				if i == 1 {
					v = q.PeakRSSGB
				}
				top = max(top, v)
				switch {
				case q.Error == "":
					xy = append(xy, plotter.XY{X: float64(q.Seq), Y: v})
				case q.stoppedForMemory():
					stopped = append(stopped, plotter.XY{X: float64(q.Seq), Y: v})
				}
			}
			if len(xy) > 0 {
				line, dots, err := plotter.NewLinePoints(xy)
				if err != nil {
					return err
				}
				line.Color, dots.Color = colors[j], colors[j]
				p.Add(line, dots)
				p.Legend.Add(side, line, dots)
			}
			if len(stopped) > 0 {
				s, err := plotter.NewScatter(stopped)
				if err != nil {
					return err
				}
				s.GlyphStyle = draw.GlyphStyle{Color: colors[j], Radius: vg.Points(4), Shape: draw.CrossGlyph{}}
				p.Add(s)
				p.Legend.Add(side+" stopped at the memory limit", s)
			}
		}
		p.Y.Max = 1.35 * top // room for the legend above the lines
		x0 := vg.Length(i) * w
		p.Draw(draw.Canvas{Canvas: img, Rectangle: vg.Rectangle{Min: vg.Point{X: x0}, Max: vg.Point{X: x0 + w, Y: h}}})
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := img.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
