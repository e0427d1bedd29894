//go:build !race

package gallery

const raceEnabled = false
