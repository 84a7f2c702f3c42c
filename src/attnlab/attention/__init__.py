"""attnlab.attention"""
