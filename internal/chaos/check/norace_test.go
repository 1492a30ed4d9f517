//go:build !race

package check

const raceBuild = false
