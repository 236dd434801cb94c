package main

import (
	"testing"

	"github.com/belaydb/belay/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
