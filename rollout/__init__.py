"""The driver: prompt source, group sampling, advantages, and the (a)sync step loop."""
