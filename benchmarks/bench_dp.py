"""DP microbenchmarks (same as ``gpsx bench``): compiled core vs the numpy twin, interleaved in one run."""
import sys

from gpsx.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
