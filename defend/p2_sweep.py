"""P2's strength sweep: every EPS in SWEEP_EPS with every ROUNDS in SWEEP_ROUNDS (defend/defend_<dataset>.py),
each setting's models cached, every attack run against each, and the privacy-utility curve written beside
the baselines: results/<dataset>/p2_sweep.json and p2_sweep.png. The same as `main.py --sweep`.

    python defend/p2_sweep.py --dataset location --seed 0 1 2
"""
import sys

if __name__ == "__main__":
    import main

    main.main(["--sweep", *sys.argv[1:]])
