"""attnlab.layers"""
