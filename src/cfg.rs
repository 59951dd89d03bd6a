//! box.cfg option schema: being written.
