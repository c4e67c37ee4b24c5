package score

import (
	"context"
	"strings"
	"testing"
)

func TestNormalizeAnswer(t *testing.T) {
	tests := []struct {
		a, b  string
		equal bool
	}{
		{"42", "42.0", true},
		{"42", " 42 ", true},
		{"42", "42.", true},
		{"1,000", "1000", true},
		{"1,000.50", "1000.5", true},
		{"+7", "7", true},
		{"-3", "-3.00", true},
		{"1e3", "1000", true},
		{".5", "0.5", true},
		{"-0", "0", true},
		{"42", "43", false},
		{"42", "-42", false},
		{"0.1", "0.10000001", false},
		{"12345678901234567890", "12345678901234567891", false}, // exact, not float64
		{"1/2", "0.5", false}, // not a decimal: compared as text
		{"0x10", "16", false},
		{"4_2", "42", false},
		{"Paris", "Paris", true},
		{"Paris", " Paris\n", true},
		{"Paris", "paris", false},
		{"1.2.3", "1.2.3", true},
		{"1.2.3", "123", false},
	}
	for _, tc := range tests {
		t.Run(tc.a+"_"+tc.b, func(t *testing.T) {
			if got := NormalizeAnswer(tc.a) == NormalizeAnswer(tc.b); got != tc.equal {
				t.Errorf("NormalizeAnswer(%q) == NormalizeAnswer(%q) is %v (%q, %q), want %v",
					tc.a, tc.b, got, NormalizeAnswer(tc.a), NormalizeAnswer(tc.b), tc.equal)
			}
		})
	}
}

func TestNewVerifierErrors(t *testing.T) {
	tests := []struct{ pattern, want string }{
		{`#### [0-9]+`, "no capture group"},
		{`#### (`, "verifier pattern"},
	}
	for _, tc := range tests {
		t.Run(tc.pattern, func(t *testing.T) {
			_, err := NewVerifier(tc.pattern)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewVerifier(%q) = %v, want an error containing %q", tc.pattern, err, tc.want)
			}
		})
	}
	v, err := NewVerifier("")
	if err != nil || v.Pattern() != DefaultVerifierPattern {
		t.Fatalf(`NewVerifier("") = %v, %v; want the default pattern`, v, err)
	}
}

func TestVerify(t *testing.T) {
	gsm, err := NewVerifier("")
	if err != nil {
		t.Fatal(err)
	}
	boxed, err := NewVerifier(`\\boxed\{([^}]*)\}`)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                string
		v                   *Verifier
		response, reference string
		want                bool
	}{
		{"gsm8k exact", gsm, "6 times 7 is 42.\n#### 42", "Natalia sold 48/2 = 24 clips.\n#### 42", true},
		{"gsm8k bare reference", gsm, "#### 42", "42", true},
		{"gsm8k decimal form", gsm, "#### 42.0", "#### 42", true},
		{"gsm8k commas", gsm, "#### 1,234", "1234", true},
		{"gsm8k trailing period", gsm, "so the answer is #### 18.", "#### 18", true},
		{"gsm8k negative", gsm, "#### -5", "#### -5", true},
		{"gsm8k wrong", gsm, "#### 41", "#### 42", false},
		{"gsm8k sign", gsm, "#### 5", "#### -5", false},
		{"gsm8k first match counts", gsm, "#### 41 then #### 42", "42", false},
		{"gsm8k no answer", gsm, "The answer is 42.", "42", false},
		{"gsm8k empty response", gsm, "", "42", false},
		{"boxed text", boxed, `so \boxed{x+1}`, `x+1`, true},
		{"boxed empty group", boxed, `\boxed{}`, ``, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.v.Verify(tc.response, tc.reference); got != tc.want {
				t.Errorf("Verify(%q, %q) = %v, want %v", tc.response, tc.reference, got, tc.want)
			}
		})
	}
}

func TestVerifierScore(t *testing.T) {
	v, err := NewVerifier("")
	if err != nil {
		t.Fatal(err)
	}
	rows := []Row{
		{ID: "a", Responses: []string{"#### 4", "#### 5", "", "#### 4.0"}, Reference: "#### 4"},
		{ID: "b", Responses: []string{"no idea"}, Reference: "7"},
	}
	var calls []int
	failed, err := v.Score(context.Background(), rows, func(done, total int) {
		if total != 2 {
			t.Errorf("progress total %d, want 2", total)
		}
		calls = append(calls, done)
	})
	if err != nil || failed != 0 {
		t.Fatalf("Score = %d, %v", failed, err)
	}
	want := [][]float64{{1, 0, 0, 1}, {0}}
	for i, r := range rows {
		if len(r.Scores) != len(want[i]) {
			t.Fatalf("row %d scores %v, want %v", i, r.Scores, want[i])
		}
		for j := range want[i] {
			if r.Scores[j] != want[i][j] {
				t.Errorf("row %d scores %v, want %v", i, r.Scores, want[i])
				break
			}
		}
	}
	if len(calls) != 2 || calls[1] != 2 {
		t.Errorf("progress calls %v, want [1 2]", calls)
	}

	rows = []Row{{ID: "x", Responses: []string{"#### 1"}, Reference: " ", Where: "in.jsonl:3"}}
	_, err = v.Score(context.Background(), rows, nil)
	if err == nil || !strings.Contains(err.Error(), "in.jsonl:3") || !strings.Contains(err.Error(), "no reference") {
		t.Fatalf("Score without a reference: %v, want an error naming in.jsonl:3", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v.Score(ctx, []Row{{Responses: []string{"#### 1"}, Reference: "1"}}, nil); err != context.Canceled {
		t.Fatalf("Score with a cancelled context: %v", err)
	}
}
