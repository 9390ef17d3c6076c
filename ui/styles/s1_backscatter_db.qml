<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis styleCategories="AllStyleCategories" version="3.22.16-Białowieża" maxScale="0" minScale="1e+08" hasScaleBasedVisibilityFlag="0">
  <flags>
    <Identifiable>1</Identifiable>
    <Removable>1</Removable>
    <Searchable>1</Searchable>
    <Private>0</Private>
  </flags>
  <temporal mode="0" fetchMode="0" enabled="0">
    <fixedRange>
      <start></start>
      <end></end>
    </fixedRange>
  </temporal>
  <customproperties>
    <Option type="Map">
      <Option value="Value" name="identify/format" type="QString"/>
    </Option>
  </customproperties>
  <pipe-data-defined-properties>
    <Option type="Map">
      <Option value="" name="name" type="QString"/>
      <Option name="properties"/>
      <Option value="collection" name="type" type="QString"/>
    </Option>
  </pipe-data-defined-properties>
  <pipe>
    <provider>
      <resampling zoomedInResamplingMethod="nearestNeighbour" enabled="false" zoomedOutResamplingMethod="nearestNeighbour" maxOversampling="2"/>
    </provider>
    <rasterrenderer classificationMin="-25" opacity="1" band="1" type="singlebandpseudocolor" nodataColor="" classificationMax="0" alphaBand="-1">
      <minMaxOrigin>
        <limits>None</limits>
        <extent>WholeRaster</extent>
        <statAccuracy>Estimated</statAccuracy>
        <cumulativeCutLower>0.02</cumulativeCutLower>
        <cumulativeCutUpper>0.98</cumulativeCutUpper>
        <stdDevFactor>2</stdDevFactor>
      </minMaxOrigin>
      <rastershader>
        <colorrampshader classificationMode="1" maximumValue="0" labelPrecision="6" colorRampType="INTERPOLATED" clip="0" minimumValue="-25">
          <colorramp name="[source]" type="gradient">
            <Option type="Map">
              <Option value="5,5,5,255" name="color1" type="QString"/>
              <Option value="250,250,250,255" name="color2" type="QString"/>
              <Option value="0" name="discrete" type="QString"/>
              <Option value="gradient" name="rampType" type="QString"/>
            </Option>
            <prop k="color1" v="5,5,5,255"/>
            <prop k="color2" v="250,250,250,255"/>
            <prop k="discrete" v="0"/>
            <prop k="rampType" v="gradient"/>
          </colorramp>
          <item value="-25" label="-25" color="#050505" alpha="255"/>
          <item value="-22.5" label="-22.5" color="#1d1d1d" alpha="255"/>
          <item value="-20" label="-20" color="#363636" alpha="255"/>
          <item value="-17.5" label="-17.5" color="#4e4e4e" alpha="255"/>
          <item value="-15" label="-15" color="#676767" alpha="255"/>
          <item value="-12.5" label="-12.5" color="#7f7f7f" alpha="255"/>
          <item value="-10" label="-10" color="#989898" alpha="255"/>
          <item value="-7.5" label="-7.5" color="#b1b1b1" alpha="255"/>
          <item value="-5" label="-5" color="#c9c9c9" alpha="255"/>
          <item value="-2.5" label="-2.5" color="#e2e2e2" alpha="255"/>
          <item value="0" label="0" color="#fafafa" alpha="255"/>
          <rampLegendSettings orientation="2" suffix="" useContinuousLegend="1" minimumLabel="" direction="0" maximumLabel="" prefix="">
            <numericFormat id="basic">
              <Option type="Map">
                <Option value="" name="decimal_separator" type="QChar"/>
                <Option value="6" name="decimals" type="int"/>
                <Option value="0" name="rounding_type" type="int"/>
                <Option value="false" name="show_plus" type="bool"/>
                <Option value="true" name="show_thousand_separator" type="bool"/>
                <Option value="false" name="show_trailing_zeros" type="bool"/>
                <Option value="" name="thousand_separator" type="QChar"/>
              </Option>
            </numericFormat>
          </rampLegendSettings>
        </colorrampshader>
      </rastershader>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation grayscaleMode="0" colorizeGreen="128" saturation="0" colorizeRed="255" invertColors="0" colorizeBlue="128" colorizeStrength="100" colorizeOn="0"/>
    <rasterresampler maxOversampling="2"/>
    <resamplingStage>resamplingFilter</resamplingStage>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
