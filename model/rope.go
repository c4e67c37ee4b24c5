package model

import "math"

// ropeInvFreq returns the rotary inverse frequencies θ^(−2i/headDim) for
// i < headDim/2, rounded to float32 as transformers computes them, with the
// "llama3" or "linear" scaling applied when configured.
func ropeInvFreq(c Config) []float32 {
	inv := ropeBase(c.RopeTheta, c.ropeDim())
	if rs := c.RopeScaling; rs != nil && rs.Type == "longrope" {
		d := c.ropeDim()
		for i := range inv { // 1 / (short_factor · θ^(2i/d)), in float32 as transformers
			inv[i] = 1 / (float32(rs.ShortFactor[i]) * float32(math.Pow(c.RopeTheta, float64(float32(2*i)/float32(d)))))
		}
	}
	if rs := c.RopeScaling; rs != nil && rs.Type == "linear" {
		for i := range inv {
			inv[i] /= float32(rs.Factor) // float32, as inv_freq /= factor
		}
	}
	if rs := c.RopeScaling; rs != nil && rs.Type == "yarn" {
		yarnInvFreq(inv, rs, c.RopeTheta, c.ropeDim())
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

// yarnInvFreq sets inv to YaRN's frequencies (see Config.parseYaRN): the
// interpolated θ^(−2i/d)/factor and the original θ^(−2i/d) mixed along a
// linear ramp over the dimensions between the correction range's bounds.
func yarnInvFreq(inv []float32, rs *RopeScaling, theta float64, headDim int) {
	d := float64(headDim)
	correction := func(rotations float64) float64 {
		return d * math.Log(rs.OriginalMaxPositionEmbeddings/(rotations*2*math.Pi)) / (2 * math.Log(theta))
	}
	low, high := correction(rs.BetaFast), correction(rs.BetaSlow)
	if rs.Truncate {
		low, high = math.Floor(low), math.Ceil(high)
	}
	low, high = max(low, 0), min(high, d-1)
	if low == high {
		high += 0.001 // as transformers, against a zero-width ramp
	}
	for i := range inv {
		posFreq := math.Pow(theta, float64(float32(2*i)/float32(headDim)))
		ramp := min(max((float64(i)-low)/(high-low), 0), 1)
		extrapolation := 1 - ramp // the share of the original frequency
		inv[i] = float32(1/(rs.Factor*posFreq)*(1-extrapolation) + 1/posFreq*extrapolation)
	}
}

// ropeScale is the factor of the RoPE tables: YaRN's attention factor, 1
// otherwise.
func ropeScale(c Config) float32 {
	if rs := c.RopeScaling; rs != nil && (rs.Type == "yarn" || rs.Type == "longrope") {
		return float32(rs.AttentionFactor)
	}
	return 1
}

// ropeTables returns cos and sin tables [positions, headDim/2], each value
// times scale (YaRN's attention factor; 1 otherwise). As in transformers,
// the angle pos·invFreq is rounded to float32 before its cosine and sine
// are taken, which matters at long positions, and the factor multiplies
// the float32 cosine and sine.
func ropeTables(inv []float32, positions int, scale float32) (cos, sin []float32) {
	half := len(inv)
	cos = make([]float32, positions*half)
	sin = make([]float32, positions*half)
	for p := 0; p < positions; p++ {
		for i, f := range inv {
			a := float64(float32(p) * f)
			cos[p*half+i] = float32(math.Cos(a)) * scale
			sin[p*half+i] = float32(math.Sin(a)) * scale
		}
	}
	return cos, sin
}
