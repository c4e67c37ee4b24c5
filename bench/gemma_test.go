package bench

import "testing"

// The Gemma presets parse as the published models: their parameter counts
// and the architecture details that set the work (sliding layers, caps).
func TestGemmaPresets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		params  int64
		sliding int
		caps    bool
	}{
		{"gemma3-1b", 999_885_952, 22, false},
		{"gemma2-2b", 2_614_341_888, 13, true},
	} {
		p, ok := Presets[tc.name]
		if !ok {
			t.Fatalf("no preset %q", tc.name)
		}
		c := p.Model
		if !c.Gemma || c.NumParams() != tc.params {
			t.Errorf("%s: Gemma %v, %d parameters, want %d", tc.name, c.Gemma, c.NumParams(), tc.params)
		}
		n := 0
		for l := 0; l < c.NumLayers; l++ {
			if c.LayerWindow(l) > 0 {
				n++
			}
		}
		if n != tc.sliding || (c.AttnSoftcap > 0) != tc.caps || (c.FinalSoftcap > 0) != tc.caps {
			t.Errorf("%s: %d sliding layers, caps %g/%g", tc.name, n, c.AttnSoftcap, c.FinalSoftcap)
		}
	}
}
