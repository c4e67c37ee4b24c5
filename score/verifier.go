package score

import (
	"context"
	"fmt"
	"math/big"
	"regexp"
	"strings"
)

// DefaultVerifierPattern extracts GSM8K's final answer: the number after
// "#### " (the layout of GSM8K's answer column, and of lm-evaluation-
// harness's strict-match filter).
const DefaultVerifierPattern = `#### (-?[\d,\.]+)`

// Verifier scores responses to tasks with a checkable answer: 1 when the
// answer extracted from the response equals the row's reference answer,
// else 0.
//
// The pattern is a Go regular expression (RE2 syntax) with at least one
// capture group. A response's answer is what the first group captures in
// the pattern's first match in the response; a response the pattern does
// not match (or whose first group captures nothing) scores 0. The
// reference answer is the first group of the pattern's first match in
// Reference, or Reference itself when the pattern does not match it (a
// bare "42"). Both answers are compared after normalization (see
// NormalizeAnswer): numbers by value, so that "1,000", "1000" and "1000.0"
// are equal, and anything else as text with surrounding white space
// removed. A Verifier never fails to score a response; a row without a
// reference is an error.
type Verifier struct {
	re *regexp.Regexp
}

// NewVerifier compiles pattern ("" means DefaultVerifierPattern).
func NewVerifier(pattern string) (*Verifier, error) {
	if pattern == "" {
		pattern = DefaultVerifierPattern
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("score: verifier pattern %q: %w", pattern, err)
	}
	if re.NumSubexp() < 1 {
		return nil, fmt.Errorf("score: verifier pattern %q has no capture group: put the answer in parentheses, as in %q", pattern, DefaultVerifierPattern)
	}
	return &Verifier{re: re}, nil
}

// Pattern returns the verifier's regular expression.
func (v *Verifier) Pattern() string { return v.re.String() }

// Extract returns the answer the pattern's first group captures in s, and
// whether there was one.
func (v *Verifier) Extract(s string) (string, bool) {
	m := v.re.FindStringSubmatchIndex(s)
	if m == nil || m[2] < 0 || m[2] == m[3] {
		return "", false
	}
	return s[m[2]:m[3]], true
}

// Verify reports whether response's answer equals reference's (see
// Verifier).
func (v *Verifier) Verify(response, reference string) bool {
	got, ok := v.Extract(response)
	if !ok {
		return false
	}
	want, ok := v.Extract(reference)
	if !ok {
		want = reference
	}
	return NormalizeAnswer(got) == NormalizeAnswer(want)
}

// decimal is a plain decimal number, optionally with an exponent and a
// trailing point ("42." at the end of a sentence).
var decimal = regexp.MustCompile(`^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$`)

// NormalizeAnswer returns the form in which answers are compared: for a
// number (after removing white space at the ends and every comma, a
// decimal like "-1,234.50", "42." or "1e3"), its exact value as a fraction
// ("-2469/2"), so that 42, 42.0 and +42 are equal; for anything else the
// text with white space at its ends removed.
func NormalizeAnswer(s string) string {
	s = strings.TrimSpace(s)
	n := strings.ReplaceAll(s, ",", "")
	if decimal.MatchString(n) {
		if r, ok := new(big.Rat).SetString(strings.TrimPrefix(n, "+")); ok {
			return "number:" + r.RatString()
		}
	}
	return "text:" + s
}

// Score implements Scorer: each response scores 1 or 0 (see Verifier).
// Every row must have a reference.
func (v *Verifier) Score(ctx context.Context, rows []Row, progress func(done, total int)) (failed int, err error) {
	for i := range rows {
		if strings.TrimSpace(rows[i].Reference) == "" {
			return 0, fmt.Errorf("score: %s: the row has no reference answer for the verifier (give \"reference\" or \"answer\")", rows[i].name(i))
		}
	}
	for i := range rows {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		r := &rows[i]
		r.Scores = make([]float64, len(r.Responses))
		for j, resp := range r.Responses {
			if v.Verify(resp, r.Reference) {
				r.Scores[j] = 1
			}
		}
		if progress != nil {
			progress(i+1, len(rows))
		}
	}
	return 0, nil
}
