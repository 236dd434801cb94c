package compat

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// jdbcJar is where Debian's libpostgresql-jdbc-java puts the driver.
const jdbcJar = "/usr/share/java/postgresql.jar"

// TestJDBC runs testdata/jdbc/Scenario.java with the PostgreSQL JDBC
// driver, launched as a single source file: a PreparedStatement executed
// past prepareThreshold (named server statements), getNotifications,
// CopyManager both ways.
func TestJDBC(t *testing.T) {
	java, err := exec.LookPath("java")
	need(t, err == nil, "java is not on PATH (Debian package default-jdk-headless)")
	_, err = exec.LookPath("javac")
	need(t, err == nil, "javac is not on PATH; the single-file source launcher needs a JDK (Debian package default-jdk-headless)")
	_, err = os.Stat(jdbcJar)
	need(t, err == nil, "%s is missing (Debian package libpostgresql-jdbc-java)", jdbcJar)
	src := testdata(t, "jdbc", "Scenario.java")
	compareThroughBelay(t, "jdbc", func(ctx context.Context, ep endpoint, id int) (string, error) {
		url := fmt.Sprintf("jdbc:postgresql://%s:%d/%s?user=%s&sslmode=disable&prepareThreshold=5&connectTimeout=10",
			ep.Host, ep.Port, compatDB, compatUser)
		// Small, quick JVMs: 8 of them start at once on a small machine.
		return runProgram(ctx, "", nil, false, java, "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss512k",
			"-cp", jdbcJar, src, url, strconv.Itoa(id))
	}, nil)
}
