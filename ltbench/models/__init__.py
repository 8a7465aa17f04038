"""Models: the open_clip wrapper, timm backbones, text classifiers, heads.

ltbench/models/clip.py and ltbench/models/metadata.py are the only modules that import open_clip.
"""
