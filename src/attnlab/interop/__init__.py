"""attnlab.interop"""
