// RETHINK_CHECK(cond, ...): TORCH_CHECK with a message whose numbers are formatted without
// iostreams. On one GPU host's build (its compiler against its torch), a TORCH_CHECK whose
// message streamed an integer crashed the process (a segfault) instead of raising, while
// messages of strings, dtypes and devices raised properly. Here integers go through
// std::to_string and floating-point values through snprintf("%g") (the text iostreams give:
// precision 6, "nan", "inf"), sizes and unscoped enumerators likewise; everything else (dtypes,
// devices, other scoped enums) through c10::str as before.
// The message is built only when the check fails, as TORCH_CHECK's is.
#pragma once

#include <c10/util/ArrayRef.h>
#include <c10/util/Exception.h>
#include <c10/util/StringUtil.h>

#include <cstdio>
#include <string>
#include <type_traits>

namespace rethink::detail {

inline void put(std::string& s, const char* v) { s += v; }
inline void put(std::string& s, const std::string& v) { s += v; }
inline void put(std::string& s, char v) { s += v; }
inline void put(std::string& s, bool v) { s += v ? '1' : '0'; }  // as an ostream prints a bool
inline void put(std::string& s, c10::IntArrayRef v) {  // sizes, as c10 prints them: [2, 3]
  s += '[';
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  s += ']';
}

template <class T>
void put(std::string& s, const T& v) {
  if constexpr (std::is_integral_v<T>) {
    s += std::to_string(v);
  } else if constexpr (std::is_floating_point_v<T>) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
    s += buf;
  } else if constexpr (std::is_enum_v<T>) {
    if constexpr (std::is_convertible_v<T, std::underlying_type_t<T>>) {  // unscoped: its number
      s += std::to_string(static_cast<std::underlying_type_t<T>>(v));
    } else {  // scoped (dtypes, layouts, devices): torch's name for it
      s += c10::str(v);
    }
  } else {
    s += c10::str(v);
  }
}

template <class... A>
std::string message(const A&... a) {
  std::string s;
  (put(s, a), ...);
  return s;
}

}  // namespace rethink::detail

#define RETHINK_CHECK(cond, ...) TORCH_CHECK(cond, ::rethink::detail::message(__VA_ARGS__))
