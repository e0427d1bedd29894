package eval

// PAD holds presentation-attack detection error rates at one threshold, as
// defined in ISO/IEC 30107-3. A presentation is accepted as live when its
// liveness score is at least the threshold.
type PAD struct {
	Threshold float64 `json:"threshold"`
	// APCER is the fraction of attack presentations accepted as live.
	APCER float64 `json:"apcer"`
	// BPCER is the fraction of bona fide (live) presentations rejected.
	BPCER   float64 `json:"bpcer"`
	Attacks int     `json:"attacks"`
	Live    int     `json:"live"`
}

// PADRates returns APCER and BPCER at threshold t for liveness scores of
// live presentations (Genuine) and attacks (Impostor). A class with no
// presentations has rate 0. The standard reports APCER per attack type and
// the worst of them; callers that mix types should also report each type.
func PADRates(s Scores, t float64) PAD {
	apcer, bpcer := s.Rates(t)
	return PAD{Threshold: t, APCER: apcer, BPCER: bpcer, Attacks: len(s.Impostor), Live: len(s.Genuine)}
}
