"""The detection benchmark in one command: NAB, synthetic outbreaks, Boston 311.

    python -m bench.bench_detection

Prints, in turn, the NAB table (ours, EARS C2 and Poisson CUSUM beside the published
scoreboard), the synthetic-outbreak table (recall, delay, false alarms per 1,000
key-days) and the alarms raised on Boston's 311 requests beside the known events.
"""

from __future__ import annotations

import sys

from bench import bench_boston, bench_nab, bench_synthetic


def main() -> None:
    for title, run in (("NAB", lambda: bench_nab.main()), ("synthetic outbreaks", lambda: bench_synthetic.main([])),
                       ("Boston 311", lambda: bench_boston.main())):
        print(f"\n{'=' * 20} {title} {'=' * 20}", flush=True)
        saved = sys.argv
        sys.argv = [saved[0]]
        try:
            run()
        finally:
            sys.argv = saved


if __name__ == "__main__":
    main()
