package train

import (
	"testing"

	"github.com/relupo/relupo/kernels"
)

func TestPrecisionOption(t *testing.T) {
	for _, c := range []struct {
		dtype   string
		bf16    bool
		want    kernels.Precision
		wantErr bool
	}{
		{"", false, kernels.F32, false},
		{"", true, kernels.BF16, false},
		{"float32", true, kernels.F32, false}, // an explicit compute_dtype wins
		{"bf16", false, kernels.BF16, false},
		{"bfloat16", false, kernels.BF16, false},
		{"fp16", false, kernels.F32, true},
	} {
		o := Options{ComputeDType: c.dtype, BF16: c.bf16}
		got, err := o.Precision()
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("compute_dtype %q, bf16 %v: got %v, %v; want %v (error %v)", c.dtype, c.bf16, got, err, c.want, c.wantErr)
		}
	}
}
