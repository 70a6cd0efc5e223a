"""``python -m demo``: bring up the embedded stack, run the bias-incident demo, print the
timeline, stop. The demo is a user of the product, so the product's CLI does not run it."""

from demo.scenario import run_demo

run_demo()
