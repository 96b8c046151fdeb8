"""Tests of the image module (pyruntime image ..., pyruntime.image.make_bundle)."""
