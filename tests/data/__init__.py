"""Tests of the data stage (kws/data); a package so its module names cannot collide."""
