package model

import "math"

// ropeInvFreq returns the rotary inverse frequencies θ^(−2i/headDim) for
// i < headDim/2, rounded to float32 as transformers computes them, with the
// "llama3" or "linear" scaling applied when configured.
func ropeInvFreq(c Config) []float32 {
	inv := ropeBase(c.RopeTheta, c.HeadDim)
	if rs := c.RopeScaling; rs != nil && rs.Type == "linear" {
		for i := range inv {
			inv[i] /= float32(rs.Factor) // float32, as inv_freq /= factor
		}
	}
	if rs := c.RopeScaling; rs != nil && rs.Type == "llama3" {
		lowWavelen := rs.OriginalMaxPositionEmbeddings / rs.LowFreqFactor
		highWavelen := rs.OriginalMaxPositionEmbeddings / rs.HighFreqFactor
		for i, f := range inv {
			fr := float64(f)
			wavelen := 2 * math.Pi / fr
			switch {
			case wavelen < highWavelen: // high frequency: unchanged
			case wavelen > lowWavelen: // low frequency: divided by factor
				fr /= rs.Factor
			default: // smooth interpolation between the two
				smooth := (rs.OriginalMaxPositionEmbeddings/wavelen - rs.LowFreqFactor) / (rs.HighFreqFactor - rs.LowFreqFactor)
				fr = (1-smooth)*fr/rs.Factor + smooth*fr
			}
			inv[i] = float32(fr)
		}
	}
	return inv
}

// ropeBase returns the unscaled inverse frequencies θ^(−2i/headDim).
func ropeBase(theta float64, headDim int) []float32 {
	inv := make([]float32, headDim/2)
	for i := range inv {
		inv[i] = float32(1 / math.Pow(theta, float64(float32(2*i)/float32(headDim))))
	}
	return inv
}

// ropeLocalInvFreq returns the inverse frequencies of Gemma-3's sliding
// layers (rope_local_base_freq, no scaling), or nil when every layer uses
// ropeInvFreq.
func ropeLocalInvFreq(c Config) []float32 {
	if c.RopeLocalTheta <= 0 {
		return nil
	}
	return ropeBase(c.RopeLocalTheta, c.HeadDim)
}

// ropeTables returns cos and sin tables [positions, headDim/2]. As in
// transformers, the angle pos·invFreq is rounded to float32 before its
// cosine and sine are taken, which matters at long positions.
func ropeTables(inv []float32, positions int) (cos, sin []float32) {
	half := len(inv)
	cos = make([]float32, positions*half)
	sin = make([]float32, positions*half)
	for p := 0; p < positions; p++ {
		for i, f := range inv {
			a := float64(float32(p) * f)
			cos[p*half+i] = float32(math.Cos(a))
			sin[p*half+i] = float32(math.Sin(a))
		}
	}
	return cos, sin
}
