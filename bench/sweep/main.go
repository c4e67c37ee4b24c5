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
// It writes OUT/sweep.json (every measurement) and OUT/<preset>-<dtype>.svg.
// The baseline is ../shared/reference/bench_train.py, run with the OpenBLAS
// core type given by -coretype (the side-by-side script measures the
// fastest; SkylakeX on AVX-512 machines) and never one inherited from the
// environment. A side that fails at a point (PyTorch runs out of memory at
// long sequences) is recorded as missing and drawn without that point.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// point is one measurement of one side.
type point struct {
	Side       string  `json:"side"` // relupo or pytorch
	Preset     string  `json:"preset"`
	DType      string  `json:"dtype"`
	Seq        int     `json:"seq"`
	TokensPerS float64 `json:"tokens_per_s"`
	PeakRSSGB  float64 `json:"peak_rss_GB"`
	Error      string  `json:"error,omitempty"`
}

func main() {
	relupo := flag.String("relupo", "relupo", "the relupo binary")
	python := flag.String("python", "/usr/bin/python3", "Python with torch")
	reference := flag.String("reference", "../shared/reference/bench_train.py", "the PyTorch baseline script")
	presets := flag.String("presets", "30m", "comma-separated presets")
	seqs := flag.String("seqs", "256,512,1024,2048", "comma-separated sequence lengths")
	dtypes := flag.String("dtypes", "f32", "comma-separated precisions: f32, bf16")
	seconds := flag.Float64("seconds", 20, "seconds each side times steps at each point (at least one step)")
	coretype := flag.String("coretype", "SkylakeX", "OPENBLAS_CORETYPE for the baseline")
	out := flag.String("out", "docs/plots", "output folder")
	replot := flag.Bool("replot", false, "only draw the plots again from OUT/sweep.json")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("sweep: ")

	var points []point
	if *replot {
		b, err := os.ReadFile(filepath.Join(*out, "sweep.json"))
		if err != nil {
			log.Fatal(err)
		}
		if err := json.Unmarshal(b, &points); err != nil {
			log.Fatalf("%s: %v", filepath.Join(*out, "sweep.json"), err)
		}
		*presets, *dtypes = "", ""
		seen := map[string]bool{}
		for _, q := range points {
			if !seen["p"+q.Preset] {
				*presets += q.Preset + ","
			}
			if !seen["d"+q.DType] {
				*dtypes += q.DType + ","
			}
			seen["p"+q.Preset], seen["d"+q.DType] = true, true
		}
		*seqs = ""
	}
	for _, preset := range split(*presets) {
		for _, dt := range split(*dtypes) {
			for _, s := range split(*seqs) {
				seq, err := strconv.Atoi(s)
				if err != nil || seq < 8 {
					log.Fatalf("-seqs: %q is not a sequence length", s)
				}
				r := runRelupo(*relupo, preset, dt, seq, *seconds)
				p := runPyTorch(*python, *reference, *coretype, preset, dt, seq, *seconds)
				log.Printf("%s %s T=%d: relupo %.0f tokens/s %.2f GB; pytorch %.0f tokens/s %.2f GB %s", preset, dt, seq,
					r.TokensPerS, r.PeakRSSGB, p.TokensPerS, p.PeakRSSGB, p.Error)
				points = append(points, r, p)
			}
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	if !*replot {
		b, _ := json.MarshalIndent(points, "", "  ")
		if err := os.WriteFile(filepath.Join(*out, "sweep.json"), append(b, '\n'), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	for _, preset := range split(*presets) {
		for _, dt := range split(*dtypes) {
			name := filepath.Join(*out, preset+"-"+dt+".svg")
			if err := drawPlots(name, preset, dt, points); err != nil {
				log.Fatal(err)
			}
			log.Printf("wrote %s", name)
		}
	}
}

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
func runRelupo(bin, preset, dt string, seq int, seconds float64) point {
	p := point{Side: "relupo", Preset: preset, DType: dt, Seq: seq}
	cd := map[string]string{"f32": "float32", "bf16": "bf16"}[dt]
	out, err := exec.Command(bin, "bench", "--preset", preset, "--seq", strconv.Itoa(seq), "--compute-dtype", cd,
		"--seconds", strconv.FormatFloat(seconds, 'f', -1, 64), "--json").Output()
	return parse(p, out, err)
}

// runPyTorch runs the baseline at one point.
func runPyTorch(python, script, coretype, preset, dt string, seq int, seconds float64) point {
	p := point{Side: "pytorch", Preset: preset, DType: dt, Seq: seq}
	cmd := exec.Command(python, script, preset, "2", strconv.FormatFloat(seconds, 'f', -1, 64), dt)
	env := []string{"SEQ=" + strconv.Itoa(seq), "OPENBLAS_CORETYPE=" + coretype, "OMP_WAIT_POLICY=PASSIVE",
		"OPENBLAS_THREAD_TIMEOUT=4", "OMP_NUM_THREADS=2", "OPENBLAS_NUM_THREADS=2"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OPENBLAS_") && !strings.HasPrefix(kv, "OMP_") && !strings.HasPrefix(kv, "SEQ=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	out, err := cmd.Output()
	return parse(p, out, err)
}

// parse reads the last JSON line of a benchmark's output into p.
func parse(p point, out []byte, err error) point {
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.Error = fmt.Sprintf("exit %d: %s", ee.ExitCode(), lastLine(ee.Stderr))
		} else {
			p.Error = err.Error()
		}
		return p
	}
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
// sequence length, one line per side.
func drawPlots(path, preset, dt string, points []point) error {
	const w, h = 5 * vg.Inch, 3.2 * vg.Inch
	img := vgsvg.New(2*w, h)
	for i, metric := range []string{"tokens/s", "peak RSS (GB)"} {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s %s: %s", preset, dt, metric)
		p.X.Label.Text = "tokens per sequence"
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Label.Text = metric
		p.Y.Min = 0
		p.Legend.Top, p.Legend.Left = true, true
		p.Legend.XOffs = vg.Points(40)
		for j, side := range []string{"relupo", "pytorch"} {
			var xy plotter.XYs
			for _, q := range points {
				if q.Side == side && q.Preset == preset && q.DType == dt && q.Error == "" {
					v := q.TokensPerS
					if i == 1 {
						v = q.PeakRSSGB
					}
					xy = append(xy, plotter.XY{X: float64(q.Seq), Y: v})
				}
			}
			if len(xy) == 0 {
				continue
			}
			line, dots, err := plotter.NewLinePoints(xy)
			if err != nil {
				return err
			}
			c := []color.Color{color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}}[j]
			line.Color, dots.Color = c, c
			p.Add(line, dots)
			p.Legend.Add(side, line, dots)
		}
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
